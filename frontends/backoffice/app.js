// Back office and finance: the order queue to start and fulfil, payments to record, receivables aging.
import { html, useState, startConsole, useAsync, useAction, Loading, Table, Field, Badge, ErrorBox, BarChart, say } from "../common/lib/ui.js";
import { api, all } from "../common/lib/api.js";
import { t, addMessages, money, date, dateTime } from "../common/lib/i18n.js";
import { messages } from "./messages.js";

addMessages(messages);
const status = (s) => t(`status.${s}`);
const today = () => new Date().toISOString().slice(0, 10);

async function customerNames() {
  try { return Object.fromEntries((await all("sales", "/v1/customers")).map((c) => [c.id, c.name])); }
  catch { return {}; } // back office may not read customers: ids are shown instead
}

// ---- orders ----------------------------------------------------------------------------------------

const has = (user, ...roles) => user.roles.some((r) => r === "admin" || roles.includes(r));

function Orders({ query, user }) {
  const canMove = has(user, "ops");
  const filter = query.status || "open";
  const state = useAsync(async () => {
    const statuses = filter === "open" ? ["submitted", "in_progress"] : [filter];
    const lists = await Promise.all(statuses.map((s) => all("sales", "/v1/orders", { status: s })));
    return { orders: lists.flat().sort((a, b) => a.id - b.id), names: await customerNames() };
  }, [filter]);
  const [notes, setNotes] = useState({});
  const act = useAction(() => state.reload());
  const move = (o, verb) => act.run(async () => {
    const note = (notes[o.id] || "").trim();
    const body = verb === "start" ? undefined : verb === "fulfil" ? { note: note || t("ord.defaultNote") } : { reason: note };
    await api("sales", `/v1/orders/${o.id}/${verb}`, { method: "POST", body });
    say(t(`ord.done.${verb}`, { id: o.id }));
  });
  return html`<h2>${t("nav.orders")}</h2>
    <div class="actions" role="group" aria-label=${t("ord.filter")}>
      ${["open", "submitted", "in_progress", "fulfilled", "rejected"].map((s) => html`<a class="button ${s === filter ? "" : "secondary"}"
        aria-current=${s === filter ? "true" : undefined} href=${`#/orders?status=${s}`}>${s === "open" ? t("ord.open") : status(s)}</a>`)}
    </div>
    <${ErrorBox} error=${act.error} />
    <${Loading} state=${state}>${({ orders, names }) => html`<${Table} caption=${t("ord.caption")} rows=${orders} columns=${[
      { label: t("ord.number"), render: (o) => `#${o.id}` },
      { label: t("ord.customer"), render: (o) => names[o.customer_id] || `#${o.customer_id}` },
      { label: t("ord.contract"), render: (o) => `#${o.contract_id}` },
      { label: t("ord.products"), render: (o) => (o.products || []).map((p) => `${p.name || p.sku} × ${p.quantity}`).join(", ") },
      { label: t("ord.status"), render: (o) => html`<${Badge} tone=${o.status === "fulfilled" ? "ok" : o.status === "rejected" ? "red" : ""}>${status(o.status)}</${Badge}>` },
      { label: t("ord.since"), render: (o) => dateTime(o.created_at) },
      { label: t("ord.note"), render: (o) => canMove && ["submitted", "in_progress"].includes(o.status)
        ? html`<label class="sr-only" for=${`note-${o.id}`}>${t("ord.noteFor", { id: o.id })}</label>
          <input id=${`note-${o.id}`} value=${notes[o.id] || ""} onInput=${(e) => setNotes({ ...notes, [o.id]: e.target.value })} />`
        : o.note || "—" },
      { label: t("app.actions"), render: (o) => !canMove ? "—" : html`<div class="actions">
        ${o.status === "submitted" && html`<button type="button" class="secondary" disabled=${act.busy} onClick=${() => move(o, "start")}
          aria-label=${t("ord.startOne", { id: o.id })}>${t("ord.start")}</button>`}
        ${["submitted", "in_progress"].includes(o.status) && html`
          <button type="button" disabled=${act.busy} onClick=${() => move(o, "fulfil")} aria-label=${t("ord.fulfilOne", { id: o.id })}>${t("ord.fulfil")}</button>
          <button type="button" class="danger" disabled=${act.busy || !(notes[o.id] || "").trim()} onClick=${() => move(o, "reject")}
            title=${t("ord.rejectHint")}>${t("ord.reject")}</button>`}</div>` },
    ]} empty=${t("ord.none")} />`}</${Loading}>`;
}

// ---- payments --------------------------------------------------------------------------------------

function Payments() {
  const state = useAsync(async () => {
    const contracts = (await all("sales", "/v1/contracts")).filter((c) => Number(c.outstanding) > 0);
    return { contracts, names: await customerNames() };
  }, []);
  const [open, setOpen] = useState(null);
  return html`<h2>${t("nav.payments")}</h2>
    <${Loading} state=${state}>${({ contracts, names }) => html`<${Table} caption=${t("pay.caption")} rows=${contracts} columns=${[
      { label: t("ord.contract"), render: (c) => `#${c.id}` },
      { label: t("ord.customer"), render: (c) => names[c.customer_id] || `#${c.customer_id}` },
      { label: t("pay.amount"), num: true, render: (c) => money(c.amount, c.currency) },
      { label: t("pay.outstanding"), num: true, render: (c) => money(c.outstanding, c.currency) },
      { label: t("pay.nextDue"), render: (c) => {
        const next = (c.payment_plan || []).find((i) => Number(i.outstanding) > 0);
        return next ? html`${date(next.due_date)} ${next.due_date < today() ? html`<${Badge} tone="red">${t("pay.overdue")}</${Badge}>` : ""}` : "—";
      } },
      { label: t("app.actions"), render: (c) => html`<button type="button" class="secondary" aria-expanded=${open === c.id ? "true" : "false"}
        onClick=${() => setOpen(open === c.id ? null : c.id)} aria-label=${t("pay.recordFor", { id: c.id })}>${t("pay.record")}</button>` },
    ]} empty=${t("pay.none")} />
    ${open && html`<${PaymentForm} contract=${contracts.find((c) => c.id === open)} onDone=${() => { setOpen(null); state.reload(); }} />`}`}
    </${Loading}>`;
}

function PaymentForm({ contract, onDone }) {
  const [form, setForm] = useState({ amount: String(contract.outstanding), paid_on: today(), reference: "" });
  const act = useAction(() => { say(t("pay.recorded", { id: contract.id })); onDone(); });
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = (e) => { e.preventDefault(); act.run(() => api("sales", `/v1/contracts/${contract.id}/payments`, { method: "POST", body: form })); };
  return html`<section class="card" aria-labelledby="pay-h"><h3 id="pay-h">${t("pay.recordFor", { id: contract.id })}</h3>
    <form class="stack" onSubmit=${submit}>
      <div class="row">
        <${Field} label=${`${t("pay.amount")} (${contract.currency})`}><input required inputmode="decimal" value=${form.amount} onInput=${set("amount")} /></${Field}>
        <${Field} label=${t("pay.paidOn")}><input required type="date" value=${form.paid_on} onInput=${set("paid_on")} /></${Field}>
        <${Field} label=${t("pay.reference")}><input required value=${form.reference} onInput=${set("reference")} /></${Field}>
      </div>
      <${ErrorBox} error=${act.error} />
      <div class="actions"><button type="submit" disabled=${act.busy}>${t("pay.save")}</button></div>
    </form></section>`;
}

// ---- receivables aging ---------------------------------------------------------------------------

const BUCKETS = ["current", "1_30", "31_60", "61_90", "90_plus"];

function Aging() {
  const state = useAsync(() => api("sales", "/v1/reports/receivables-aging"), []);
  return html`<h2>${t("nav.aging")}</h2>
    <${Loading} state=${state}>${(r) => html`
      <p class="muted">${t("aging.asOf", { d: date(r.as_of), c: r.base_currency })}</p>
      <${BarChart} title=${t("aging.chart", { c: r.base_currency })} series=${[r.base_currency]}
        bars=${BUCKETS.map((b) => ({ label: t(`aging.${b}`), values: [Number(r.total[b])] }))} format=${(v) => money(v, r.base_currency)} />
      <${Table} caption=${t("aging.caption")} rowKey=${(x) => `${x.customer_id}-${x.currency}`} rows=${r.customers} columns=${[
        { label: t("ord.customer"), key: "name" }, { label: t("aging.currency"), key: "currency" },
        ...BUCKETS.map((b) => ({ label: t(`aging.${b}`), num: true, render: (x) => money(x[b], x.currency) })),
        { label: t("aging.total"), num: true, render: (x) => money(x.total, x.currency) },
      ]} />`}</${Loading}>`;
}

startConsole({
  title: () => t("bo.title"),
  roles: ["ops", "finance"],
  nav: (user) => [{ href: "#/orders", label: t("nav.orders") },
                  ...(has(user, "finance") ? [{ href: "#/payments", label: t("nav.payments") }, { href: "#/aging", label: t("nav.aging") }] : [])],
  view: (route, user) => {
    const head = route.parts[0] || "orders";
    if (head === "payments") return html`<${Payments} />`;
    if (head === "aging") return html`<${Aging} />`;
    return html`<${Orders} query=${route.query} user=${user} />`;
  },
});
