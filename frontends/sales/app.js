// Sales workbench: reps and sales managers.
import { html, useState, useEffect, startConsole, useAsync, useAction, Loading, Table, Field, Stat, Badge, ErrorBox, say } from "../common/lib/ui.js";
import { api, all, stream } from "../common/lib/api.js";
import { t, addMessages, money, date, dateTime, num } from "../common/lib/i18n.js";
import { OPEN, daysLeft } from "../common/lib/leads.js";
import { Person } from "../common/lib/people.js";
import { onAuthChange } from "../common/lib/auth.js";
import { messages } from "./messages.js";

addMessages(messages);

const STAGES = ["qualification", "needs_analysis", "proposal", "negotiation", "won", "lost"];
const DAY = 86400000;
const endOfToday = () => { const d = new Date(); d.setHours(23, 59, 59, 999); return d.getTime(); };
const go = (hash) => { location.hash = hash; };

// ---- shared data -----------------------------------------------------------------------------------

// a rep: their own leads; a manager: every owned lead they may see (their teams')
const isManager = (user) => user.roles.some((r) => ["sales_manager", "general_manager", "admin"].includes(r));

async function myLeads(user) {
  const query = isManager(user) ? { per_page: 100 } : { owner_id: user.id, per_page: 100 };
  const page = await api("leads", "/v1/leads", { query });
  const items = page.items.filter((l) => OPEN.includes(l.status) && l.owner_id);
  for (const l of items) l._left = daysLeft(l);  // from the API's recycle_at
  return items;
}

function installmentsDue(contracts, within = 7) {
  const limit = Date.now() + within * DAY;
  const out = [];
  for (const c of contracts) for (const i of c.payment_plan || []) {
    if (Number(i.outstanding) > 0 && new Date(`${i.due_date}T00:00:00`).getTime() <= limit) out.push({ ...i, contract: c });
  }
  return out;
}

function expiring(contracts, within = 60) {
  const limit = Date.now() + within * DAY;
  return contracts.filter((c) => ["signed", "active", "expiring"].includes(c.status) && c.end_date
    && new Date(`${c.end_date}T00:00:00`).getTime() <= limit);
}

function paymentStatus(c) {
  const plan = c.payment_plan || [];
  if (!plan.length) return html`<span class="muted">—</span>`;
  if (Number(c.outstanding) <= 0) return html`<${Badge} tone="ok">${t("pay.paid")}</${Badge}>`;
  const today = new Date().toISOString().slice(0, 10);
  if (plan.some((i) => Number(i.outstanding) > 0 && i.due_date < today)) return html`<${Badge} tone="red">${t("pay.overdue")}</${Badge}>`;
  if (plan.some((i) => Number(i.paid) > 0)) return html`<${Badge} tone="amber">${t("pay.partly")}</${Badge}>`;
  return html`<${Badge}>${t("pay.open")}</${Badge}>`;
}

const status = (s) => t(`status.${s}`);

// the inbox's unread count, kept live by one stream for the whole console
const inbox = { unread: null, items: [], listeners: new Set(), stop: null };
function inboxChanged() { for (const fn of inbox.listeners) fn({ ...inbox }); }
onAuthChange(() => {  // another user (or none): forget the inbox and close its stream
  if (inbox.stop) inbox.stop();
  Object.assign(inbox, { unread: null, items: [], stop: null });
  inboxChanged();
});

function startInbox() {
  if (inbox.stop) return;
  api("notify", "/v1/inbox", { query: { limit: 50 } }).then((p) => { inbox.items = p.items; inbox.unread = p.unread; inboxChanged(); },
                                                             () => {});
  inbox.stop = stream("notify", "/v1/inbox/stream", (type, item) => {
    if (type !== "inbox" || inbox.items.some((i) => i.id === item.id)) return;
    inbox.items = [item, ...inbox.items];
    inbox.unread = (inbox.unread || 0) + (item.read ? 0 : 1);
    inboxChanged();
    say(t("inbox.new", { title: item.title }));
  });
}
function useInbox() {
  const [s, setS] = useState({ ...inbox });
  useEffect(() => { inbox.listeners.add(setS); startInbox(); return () => inbox.listeners.delete(setS); }, []);
  return s;
}

// ---- today board -----------------------------------------------------------------------------------

function Today({ user }) {
  const leads = useAsync(() => myLeads(user), [user.id]);
  const approvals = useAsync(() => api("sales", "/v1/approvals"), [user.id]);
  const contracts = useAsync(() => all("sales", "/v1/contracts"), [user.id]);
  const box = useInbox();
  const l = leads.data || [];
  const today = l.filter((x) => x.next_follow_up_at && new Date(x.next_follow_up_at).getTime() <= endOfToday()).length;
  const soon = l.filter((x) => x._left !== null && x._left <= 3).length;
  return html`<h2>${t("today.title")}</h2>
    <div class="stats">
      <${Stat} href="#/leads?f=today" count=${leads.data ? today : null} label=${t("today.contact")} />
      <${Stat} href="#/leads?f=recycle" count=${leads.data ? soon : null} label=${t("today.recycle")} tone=${soon ? "amber" : ""} />
      <${Stat} href="#/approvals" count=${approvals.data ? approvals.data.length : null} label=${t("today.approvals")} />
      <${Stat} href="#/contracts?f=expiring" count=${contracts.data ? expiring(contracts.data).length : null} label=${t("today.expiring")} />
      <${Stat} href="#/contracts?f=due" count=${contracts.data ? installmentsDue(contracts.data).length : null} label=${t("today.due")}
        tone=${contracts.data && installmentsDue(contracts.data, 0).length ? "red" : ""} />
      <${Stat} href="#/inbox" count=${box.unread} label=${t("today.unread")} />
    </div>
    ${[leads, approvals, contracts].map((s) => s.error && html`<${ErrorBox} error=${s.error} />`)}
    <p class="muted">${t("today.hint")}</p>`;
}

// ---- leads -----------------------------------------------------------------------------------------

function Leads({ user, query }) {
  const state = useAsync(() => myLeads(user), [user.id]);
  const f = query.f;
  const title = f === "today" ? t("leads.today") : f === "recycle" ? t("leads.recycle") : isManager(user) ? t("leads.team") : t("leads.mine");
  return html`<h2>${title}</h2>
    <div class="actions"><a class="button secondary" href="#/leads">${isManager(user) ? t("leads.team") : t("leads.mine")}</a>
      <a class="button secondary" href="#/leads?f=today">${t("leads.today")}</a>
      <a class="button secondary" href="#/leads?f=recycle">${t("leads.recycle")}</a></div>
    <${Loading} state=${state}>${(rows) => {
      let list = rows;
      if (f === "today") list = rows.filter((x) => x.next_follow_up_at && new Date(x.next_follow_up_at).getTime() <= endOfToday());
      if (f === "recycle") list = rows.filter((x) => x._left !== null && x._left <= 3);
      list = [...list].sort((a, b) => (a._left ?? 1e9) - (b._left ?? 1e9));
      return html`<${Table} caption=${title} rows=${list} columns=${[
        { label: t("lead.name"), render: (r) => html`<a href=${`#/leads/${r.id}`}>${r.name || r.company || `#${r.id}`}</a>` },
        { label: t("lead.company"), key: "company" },
        { label: t("lead.status"), render: (r) => status(r.status) },
        ...(isManager(user) ? [{ label: t("lead.owner"), render: (r) => r.owner_name || html`<${Person} id=${r.owner_id} />` }] : []),
        { label: t("lead.next"), render: (r) => dateTime(r.next_follow_up_at) },
        { label: t("lead.daysLeft"), num: true, render: (r) => r.locked ? html`<${Badge}>🔒 ${t("lead.locked")}</${Badge}>`
          : r._left === null ? "—" : html`<${Badge} tone=${r._left <= 1 ? "red" : r._left <= 3 ? "amber" : "ok"}>${t("lead.days", { n: r._left })}</${Badge}>` },
      ]} />`;
    }}</${Loading}>`;
}

function Lead({ id, user }) {
  const state = useAsync(async () => {
    const [lead, fus] = await Promise.all([api("leads", `/v1/leads/${id}`), api("leads", `/v1/leads/${id}/follow-ups`)]);
    return { lead, followUps: fus.items };
  }, [id]);
  return html`<${Loading} state=${state}>${({ lead, followUps }) => html`
    <h2>${lead.name || lead.company} <${Badge}>${status(lead.status)}</${Badge}></h2>
    <div class="grid">
      <section class="card" aria-labelledby="lead-facts"><h3 id="lead-facts">${t("lead.facts")}</h3>
        <dl class="facts">
          <dt>${t("lead.company")}</dt><dd>${lead.company || "—"}</dd>
          <dt>${t("lead.phone")}</dt><dd>${lead.phone || "—"}</dd>
          <dt>${t("lead.email")}</dt><dd>${lead.email || "—"}</dd>
          <dt>${t("lead.city")}</dt><dd>${[lead.province, lead.city].filter(Boolean).join(" ") || "—"}</dd>
          <dt>${t("lead.source")}</dt><dd>${lead.source || "—"}</dd>
          <dt>${t("lead.score")}</dt><dd>${lead.score ?? "—"} ${lead.tier ? `(${lead.tier})` : ""}</dd>
          <dt>${t("lead.owner")}</dt><dd>${lead.owner_name || html`<${Person} id=${lead.owner_id} />`}</dd>
          <dt>${t("lead.next")}</dt><dd>${dateTime(lead.next_follow_up_at)}</dd>
          <dt>${t("lead.recycleAt")}</dt><dd>${lead.locked ? t("lead.locked") : dateTime(lead.recycle_at)}</dd>
        </dl>
        <${StatusActions} lead=${lead} onDone=${state.reload} />
      </section>
      ${OPEN.includes(lead.status) && lead.owner_id === user.id && html`<${FollowUpForm} lead=${lead} onDone=${state.reload} />`}
      ${OPEN.includes(lead.status) && html`<${ConvertForm} lead=${lead} onDone=${state.reload} />`}
      ${lead.status === "converted" && html`<section class="card"><p>${t("lead.converted")}</p>
        <a class="button" href="#/pipeline">${t("nav.pipeline")}</a></section>`}
    </div>
    <${Table} caption=${t("fu.history")} rows=${followUps} columns=${[
      { label: t("fu.at"), render: (r) => dateTime(r.created_at) },
      { label: t("fu.channel"), render: (r) => t(`ch.${r.channel}`) },
      { label: t("fu.note"), key: "note" },
      { label: t("fu.outcome"), key: "outcome" },
      { label: t("fu.next"), render: (r) => dateTime(r.next_follow_up_at) },
    ]} />`}</${Loading}>`;
}

function StatusActions({ lead, onDone }) {
  const act = useAction(onDone);
  const next = lead.status === "new" ? "contacted" : lead.status === "contacted" ? "qualified" : null;
  return html`<div class="actions" style="margin-top:10px">
    ${next && html`<button type="button" class="secondary" disabled=${act.busy} onClick=${() => act.run(async () => {
      await api("leads", `/v1/leads/${lead.id}/status`, { method: "POST", body: { status: next } }); say(t("app.saved")); })}>
      ${t("lead.markAs", { s: status(next) })}</button>`}
    <${ErrorBox} error=${act.error} /></div>`;
}

function toIso(local) { return local ? new Date(local).toISOString() : undefined; }

function FollowUpForm({ lead, onDone }) {
  const [form, setForm] = useState({ channel: "call", note: "", outcome: "", next: "" });
  const act = useAction(() => { setForm({ channel: "call", note: "", outcome: "", next: "" }); say(t("fu.logged")); onDone(); });
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = (e) => { e.preventDefault(); act.run(() => api("leads", `/v1/leads/${lead.id}/follow-ups`, { method: "POST",
    body: { channel: form.channel, note: form.note || undefined, outcome: form.outcome || undefined,
            next_follow_up_at: toIso(form.next) } })); };
  return html`<section class="card" aria-labelledby="fu-h"><h3 id="fu-h">${t("fu.title")}</h3>
    <form class="stack" onSubmit=${submit}>
      <${Field} label=${t("fu.channel")}><select value=${form.channel} onChange=${set("channel")}>
        ${["call", "visit", "wechat", "email", "sms", "other"].map((c) => html`<option value=${c}>${t(`ch.${c}`)}</option>`)}</select></${Field}>
      <${Field} label=${t("fu.note")}><textarea value=${form.note} onInput=${set("note")}></textarea></${Field}>
      <${Field} label=${t("fu.outcome")}><input value=${form.outcome} onInput=${set("outcome")} /></${Field}>
      <${Field} label=${t("fu.next")}><input type="datetime-local" value=${form.next} onInput=${set("next")} /></${Field}>
      <${ErrorBox} error=${act.error} />
      <div class="actions"><button type="submit" disabled=${act.busy}>${t("fu.submit")}</button></div>
    </form></section>`;
}

function ConvertForm({ lead, onDone }) {
  const [form, setForm] = useState({ name: lead.company ? `${lead.company}` : "", amount: "", currency: "CNY" });
  const act = useAction(() => { say(t("lead.convertedSay")); onDone(); });
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = (e) => { e.preventDefault(); act.run(() => api("leads", `/v1/leads/${lead.id}/convert`, { method: "POST",
    body: { opportunity_name: form.name, expected_amount: form.amount === "" ? undefined : Number(form.amount), currency: form.currency } })); };
  return html`<section class="card" aria-labelledby="cv-h"><h3 id="cv-h">${t("cv.title")}</h3>
    <form class="stack" onSubmit=${submit}>
      <${Field} label=${t("cv.name")}><input required value=${form.name} onInput=${set("name")} /></${Field}>
      <div class="row">
        <${Field} label=${t("cv.amount")}><input type="number" min="0" step="0.01" value=${form.amount} onInput=${set("amount")} /></${Field}>
        <${Field} label=${t("q.currency")}><select value=${form.currency} onChange=${set("currency")}>
          ${["CNY", "USD", "EUR", "HKD"].map((c) => html`<option>${c}</option>`)}</select></${Field}>
      </div>
      <${ErrorBox} error=${act.error} />
      <div class="actions"><button type="submit" disabled=${act.busy}>${t("cv.submit")}</button></div>
    </form></section>`;
}

// ---- pool ------------------------------------------------------------------------------------------

function Pool() {
  const state = useAsync(() => api("leads", "/v1/pool", { query: { per_page: 100 } }), []);
  const act = useAction();
  const claim = (lead) => act.run(async () => {
    await api("leads", `/v1/leads/${lead.id}/claim`, { method: "POST" });
    say(t("pool.claimed", { name: lead.name || lead.company }));
    go(`#/leads/${lead.id}`);
  });
  return html`<h2>${t("nav.pool")}</h2><${ErrorBox} error=${act.error} />
    <${Loading} state=${state}>${(page) => html`<${Table} caption=${t("pool.caption", { n: page.total })} rows=${page.items} columns=${[
      { label: t("lead.name"), render: (r) => r.name || "—" },
      { label: t("lead.company"), key: "company" },
      { label: t("lead.phone"), key: "phone" },
      { label: t("lead.city"), render: (r) => [r.province, r.city].filter(Boolean).join(" ") || "—" },
      { label: t("lead.source"), key: "source" },
      { label: t("pool.since"), render: (r) => dateTime(r.pooled_at) },
      { label: t("app.actions"), render: (r) => html`<button type="button" disabled=${act.busy} onClick=${() => claim(r)}
          aria-label=${t("pool.claimOne", { name: r.name || r.company || r.id })}>${t("pool.claim")}</button>` },
    ]} />`}</${Loading}>`;
}

// ---- customers and pipeline -------------------------------------------------------------------------

function Customers() {
  const state = useAsync(() => all("sales", "/v1/customers"), []);
  return html`<h2>${t("nav.customers")}</h2><${Loading} state=${state}>${(rows) => html`<${Table} caption=${t("nav.customers")}
    rows=${rows} columns=${[
      { label: t("cust.name"), key: "name" }, { label: t("lead.company"), key: "company" },
      { label: t("cust.tier"), key: "tier" }, { label: t("lead.city"), key: "city" },
      { label: t("cust.tickets"), num: true, key: "open_tickets" },
      { label: t("cust.risk"), render: (r) => r.churn_risk ? html`<${Badge} tone="red">${t("cust.atRisk")}</${Badge}>` : "—" },
    ]} />`}</${Loading}>`;
}

function Pipeline() {
  const state = useAsync(async () => {
    const [opps, customers] = await Promise.all([all("sales", "/v1/opportunities"), all("sales", "/v1/customers")]);
    return { opps, names: Object.fromEntries(customers.map((c) => [c.id, c.name])) };
  }, []);
  const act = useAction(() => { say(t("app.saved")); state.reload(); });
  const move = (o, stage) => act.run(() => api("sales", `/v1/opportunities/${o.id}`, { method: "PATCH",
    body: stage === "lost" ? { stage, lost_reason: t("pipe.lostDefault") } : { stage } }));
  return html`<h2>${t("nav.pipeline")}</h2><${ErrorBox} error=${act.error} />
    <${Loading} state=${state}>${({ opps, names }) => html`<div class="board">${STAGES.map((s) => {
      const list = opps.filter((o) => o.stage === s);
      const sum = list.reduce((a, o) => a + Number(o.expected_amount || 0), 0);
      return html`<section class="column" aria-labelledby=${`col-${s}`}>
        <h3 id=${`col-${s}`}>${t(`stage.${s}`)} · ${list.length} <span class="muted">${num(sum)}</span></h3>
        <ul>${list.map((o) => html`<li>
          <strong>${o.name}</strong><br /><span class="muted">${names[o.customer_id] || ""}</span><br />
          ${money(o.expected_amount, o.currency)}
          <div class="actions" style="margin-top:6px">
            <label class="sr-only" for=${`mv-${o.id}`}>${t("pipe.move", { name: o.name })}</label>
            <select id=${`mv-${o.id}`} value=${o.stage} disabled=${act.busy || ["won", "lost"].includes(o.stage)}
              onChange=${(e) => move(o, e.target.value)}>${STAGES.map((x) => html`<option value=${x}>${t(`stage.${x}`)}</option>`)}</select>
            ${!["won", "lost"].includes(o.stage) && html`<a href=${`#/quotes/new?opportunity=${o.id}`}>${t("q.new")}</a>`}
          </div></li>`)}</ul></section>`;
    })}</div>`}</${Loading}>`;
}

// ---- quotes ----------------------------------------------------------------------------------------

function Quotes() {
  const state = useAsync(() => all("sales", "/v1/quotes"), []);
  return html`<h2>${t("nav.quotes")}</h2>
    <div class="actions"><a class="button" href="#/quotes/new">${t("q.new")}</a></div>
    <${Loading} state=${state}>${(rows) => html`<${Table} caption=${t("nav.quotes")} rows=${rows} columns=${[
      { label: "#", render: (r) => html`<a href=${`#/quotes/${r.id}`}>${t("q.number", { id: r.id, rev: r.revision })}</a>` },
      { label: t("q.status"), render: (r) => status(r.status) },
      { label: t("q.maxDiscount"), num: true, render: (r) => `${num(r.max_discount_pct, 1)}%` },
      { label: t("q.total"), num: true, render: (r) => money(r.total, r.currency) },
      { label: t("q.updated"), render: (r) => dateTime(r.updated_at) },
    ]} />`}</${Loading}>`;
}

const round2 = (x) => Math.round(x * 100) / 100;
export function quoteTotals(lines) {
  let subtotal = 0, discount = 0, maxPct = 0;
  for (const l of lines) {
    const gross = round2((Number(l.quantity) || 0) * (Number(l.unit_price) || 0));
    const d = round2(gross * (Number(l.discount_pct) || 0) / 100);
    subtotal += gross; discount += d; maxPct = Math.max(maxPct, Number(l.discount_pct) || 0);
  }
  return { subtotal: round2(subtotal), discount: round2(discount), total: round2(subtotal - discount), maxPct };
}

function QuoteEditor({ query }) {
  const state = useAsync(async () => {
    const [opps, products] = await Promise.all([all("sales", "/v1/opportunities"), api("sales", "/v1/products")]);
    return { opps: opps.filter((o) => !["won", "lost"].includes(o.stage)), products: products.filter((p) => p.active !== false) };
  }, []);
  return html`<h2>${t("q.new")}</h2><${Loading} state=${state}>${(d) => html`<${QuoteForm} ...${d} preset=${query.opportunity} />`}</${Loading}>`;
}

function QuoteForm({ opps, products, preset }) {
  const first = products[0];
  const blank = () => ({ sku: first ? first.sku : "", quantity: 1, unit_price: first ? first.list_price : 0, discount_pct: 0 });
  const [opp, setOpp] = useState(preset || (opps[0] && String(opps[0].id)) || "");
  const [currency, setCurrency] = useState(first ? first.currency : "CNY");
  const [lines, setLines] = useState([blank()]);
  const act = useAction();
  const totals = quoteTotals(lines);
  const setLine = (i, k, v) => setLines(lines.map((l, j) => {
    if (j !== i) return l;
    const n = { ...l, [k]: v };
    if (k === "sku") { const p = products.find((x) => x.sku === v); if (p) n.unit_price = p.list_price; }
    return n;
  }));
  const save = (submit) => act.run(async () => {
    const q = await api("sales", "/v1/quotes", { method: "POST", body: { opportunity_id: Number(opp), currency,
      lines: lines.map((l) => ({ sku: l.sku, quantity: String(l.quantity), unit_price: String(l.unit_price), discount_pct: String(l.discount_pct || 0) })) } });
    if (submit) await api("sales", `/v1/quotes/${q.id}/submit`, { method: "POST", body: {} });
    say(submit ? t("q.submitted") : t("app.saved"));
    go(`#/quotes/${q.id}`);
  });
  if (!opps.length) return html`<p class="muted">${t("q.noOpps")}</p>`;
  return html`<form class="stack card" onSubmit=${(e) => { e.preventDefault(); save(false); }}>
    <div class="row">
      <${Field} label=${t("q.opportunity")}><select value=${opp} onChange=${(e) => setOpp(e.target.value)}>
        ${opps.map((o) => html`<option value=${String(o.id)}>${o.name}</option>`)}</select></${Field}>
      <${Field} label=${t("q.currency")}><select value=${currency} onChange=${(e) => setCurrency(e.target.value)}>
        ${["CNY", "USD", "EUR", "HKD"].map((c) => html`<option>${c}</option>`)}</select></${Field}>
    </div>
    <fieldset class="stack"><legend>${t("q.lines")}</legend>
      ${lines.map((l, i) => html`<div class="row" role="group" aria-label=${t("q.line", { n: i + 1 })}>
        <${Field} label=${t("q.product")}><select value=${l.sku} onChange=${(e) => setLine(i, "sku", e.target.value)}>
          ${products.map((p) => html`<option value=${p.sku}>${p.name} (${p.sku})</option>`)}</select></${Field}>
        <${Field} label=${t("q.qty")}><input type="number" min="0" step="1" value=${l.quantity} onInput=${(e) => setLine(i, "quantity", e.target.value)} /></${Field}>
        <${Field} label=${t("q.price")}><input type="number" min="0" step="0.01" value=${l.unit_price} onInput=${(e) => setLine(i, "unit_price", e.target.value)} /></${Field}>
        <${Field} label=${t("q.discount")}><input type="number" min="0" max="100" step="0.5" value=${l.discount_pct} onInput=${(e) => setLine(i, "discount_pct", e.target.value)} /></${Field}>
        ${lines.length > 1 && html`<button type="button" class="secondary" onClick=${() => setLines(lines.filter((_, j) => j !== i))}>${t("q.remove")}</button>`}
      </div>`)}
      <div><button type="button" class="secondary" onClick=${() => setLines([...lines, blank()])}>${t("q.addLine")}</button></div>
    </fieldset>
    <dl class="facts totals" aria-live="polite" data-testid="quote-totals">
      <dt>${t("q.subtotal")}</dt><dd>${money(totals.subtotal, currency)}</dd>
      <dt>${t("q.discountAmount")}</dt><dd>${money(totals.discount, currency)}</dd>
      <dt>${t("q.total")}</dt><dd><strong>${money(totals.total, currency)}</strong></dd>
      <dt>${t("q.maxDiscount")}</dt><dd>${num(totals.maxPct, 1)}%</dd>
    </dl>
    <${ErrorBox} error=${act.error} />
    <div class="actions"><button type="submit" class="secondary" disabled=${act.busy}>${t("q.saveDraft")}</button>
      <button type="button" disabled=${act.busy} onClick=${() => save(true)}>${t("q.saveSubmit")}</button></div>
  </form>`;
}

function Quote({ id }) {
  const state = useAsync(() => api("sales", `/v1/quotes/${id}`), [id]);
  const act = useAction(() => { say(t("q.submitted")); state.reload(); });
  return html`<${Loading} state=${state}>${(q) => html`
    <h2>${t("q.number", { id: q.id, rev: q.revision })} <${Badge}>${status(q.status)}</${Badge}></h2>
    <${Table} caption=${t("q.lines")} rowKey=${(r) => r.seq} rows=${q.lines} columns=${[
      { label: t("q.product"), render: (r) => `${r.name || ""} (${r.sku})` },
      { label: t("q.qty"), num: true, render: (r) => num(r.quantity, 0) },
      { label: t("q.price"), num: true, render: (r) => money(r.unit_price, q.currency) },
      { label: t("q.discount"), num: true, render: (r) => `${num(r.discount_pct, 1)}%` },
      { label: t("q.net"), num: true, render: (r) => money(r.net, q.currency) },
    ]} />
    <dl class="facts totals card">
      <dt>${t("q.subtotal")}</dt><dd>${money(q.subtotal, q.currency)}</dd>
      <dt>${t("q.discountAmount")}</dt><dd>${money(q.discount_amount, q.currency)}</dd>
      <dt>${t("q.total")}</dt><dd><strong>${money(q.total, q.currency)}</strong></dd>
    </dl>
    <${ErrorBox} error=${act.error} />
    ${["draft", "returned", "withdrawn"].includes(q.status) && html`<button type="button" disabled=${act.busy}
      onClick=${() => act.run(() => api("sales", `/v1/quotes/${q.id}/submit`, { method: "POST", body: {} }))}>${t("q.submit")}</button>`}`}
  </${Loading}>`;
}

// ---- approvals -------------------------------------------------------------------------------------

function Approvals() {
  const state = useAsync(() => api("sales", "/v1/approvals"), []);
  const [comments, setComments] = useState({});
  const act = useAction(() => state.reload());
  const decide = (a, decision) => act.run(async () => {
    await api("sales", `/v1/approvals/${a.id}/decision`, { method: "POST",
      body: { decision, step: a.current_step, comment: comments[a.id] || undefined } });
    say(t(`ap.done.${decision}`, { id: a.id }));
  });
  return html`<h2>${t("nav.approvals")}</h2><${ErrorBox} error=${act.error} />
    <${Loading} state=${state}>${(rows) => html`<${Table} caption=${t("ap.caption")} rows=${rows} columns=${[
      { label: t("ap.subject"), render: (a) => a.subject_type === "quote"
        ? html`<a href=${`#/quotes/${a.subject_id}`}>${t("ap.quote", { id: a.subject_id })}</a>` : t("ap.contract", { id: a.subject_id }) },
      { label: t("ap.requester"), render: (a) => html`<${Person} id=${a.requester_id} />` },
      { label: t("q.total"), num: true, render: (a) => money(a.amount, a.currency) },
      { label: t("q.maxDiscount"), num: true, render: (a) => a.max_discount_pct == null ? "—" : `${num(a.max_discount_pct, 1)}%` },
      { label: t("ap.step"), render: (a) => `${a.current_step} / ${(a.steps || []).length}` },
      { label: t("ap.comment"), render: (a) => html`<label class="sr-only" for=${`cm-${a.id}`}>${t("ap.commentOn", { id: a.id })}</label>
        <input id=${`cm-${a.id}`} value=${comments[a.id] || ""} onInput=${(e) => setComments({ ...comments, [a.id]: e.target.value })} />` },
      { label: t("app.actions"), render: (a) => html`<div class="actions">
        <button type="button" disabled=${act.busy} onClick=${() => decide(a, "approve")} aria-label=${t("ap.approveOne", { id: a.id })}>${t("ap.approve")}</button>
        <button type="button" class="secondary" disabled=${act.busy} onClick=${() => decide(a, "return")}>${t("ap.return")}</button>
        <button type="button" class="danger" disabled=${act.busy} onClick=${() => decide(a, "reject")}>${t("ap.reject")}</button></div>` },
    ]} empty=${t("ap.none")} />`}</${Loading}>`;
}

// ---- contracts -------------------------------------------------------------------------------------

function Contracts({ query }) {
  const state = useAsync(async () => {
    const [contracts, customers] = await Promise.all([all("sales", "/v1/contracts"), all("sales", "/v1/customers")]);
    return { contracts, names: Object.fromEntries(customers.map((c) => [c.id, c.name])) };
  }, []);
  const f = query.f;
  return html`<h2>${f === "expiring" ? t("today.expiring") : f === "due" ? t("today.due") : t("nav.contracts")}</h2>
    <${Loading} state=${state}>${({ contracts, names }) => {
      if (f === "due") return html`<${Table} caption=${t("today.due")} rows=${installmentsDue(contracts)} columns=${[
        { label: t("ct.number"), render: (i) => `#${i.contract.id}` },
        { label: t("cust.name"), render: (i) => names[i.contract.customer_id] || i.contract.customer_id },
        { label: t("ct.due"), render: (i) => date(i.due_date) },
        { label: t("ct.outstanding"), num: true, render: (i) => money(i.outstanding, i.contract.currency) },
      ]} />`;
      const rows = f === "expiring" ? expiring(contracts) : contracts;
      return html`<${Table} caption=${t("nav.contracts")} rows=${rows} columns=${[
        { label: t("ct.number"), render: (c) => `#${c.id}` },
        { label: t("cust.name"), render: (c) => names[c.customer_id] || c.customer_id },
        { label: t("ct.status"), render: (c) => status(c.status) },
        { label: t("ct.amount"), num: true, render: (c) => money(c.amount, c.currency) },
        { label: t("ct.outstanding"), num: true, render: (c) => money(c.outstanding, c.currency) },
        { label: t("ct.payment"), render: paymentStatus },
        { label: t("ct.end"), render: (c) => date(c.end_date) },
      ]} />`;
    }}</${Loading}>`;
}

// ---- inbox -----------------------------------------------------------------------------------------

function Inbox() {
  const box = useInbox();
  const act = useAction();
  const read = (item) => act.run(async () => {
    await api("notify", `/v1/inbox/${item.id}/read`, { method: "POST" });
    inbox.items = inbox.items.map((i) => (i.id === item.id ? { ...i, read: true } : i));
    inbox.unread = Math.max(0, (inbox.unread || 0) - (item.read ? 0 : 1));
    inboxChanged();
  });
  const readAll = () => act.run(async () => {
    await api("notify", "/v1/inbox/read-all", { method: "POST" });
    inbox.items = inbox.items.map((i) => ({ ...i, read: true })); inbox.unread = 0; inboxChanged();
  });
  return html`<h2>${t("nav.inbox")}</h2><p class="muted">${t("inbox.live")}</p>
    <${ErrorBox} error=${act.error} />
    <div class="actions"><button type="button" class="secondary" onClick=${readAll} disabled=${!box.unread}>${t("inbox.readAll")}</button></div>
    ${box.items.length === 0 ? html`<p class="muted">${t("app.empty")}</p>` : html`<ul class="inbox">${box.items.map((i) => html`
      <li class=${i.read ? "" : "unread"}><strong>${i.title}</strong> <span class="muted">${dateTime(i.created_at)}</span>
        <p>${i.body}</p>
        ${!i.read && html`<button type="button" class="secondary" onClick=${() => read(i)}>${t("inbox.markRead")}</button>`}</li>`)}</ul>`}`;
}

// ---- the console -----------------------------------------------------------------------------------

function View({ route, user }) {
  const [head, id] = route.parts;
  switch (head || "") {
    case "": return html`<${Today} user=${user} />`;
    case "leads": return id ? html`<${Lead} id=${id} user=${user} />` : html`<${Leads} user=${user} query=${route.query} />`;
    case "pool": return html`<${Pool} />`;
    case "customers": return html`<${Customers} />`;
    case "pipeline": return html`<${Pipeline} />`;
    case "quotes": return id === "new" ? html`<${QuoteEditor} query=${route.query} />` : id ? html`<${Quote} id=${id} />` : html`<${Quotes} />`;
    case "approvals": return html`<${Approvals} />`;
    case "contracts": return html`<${Contracts} query=${route.query} />`;
    case "inbox": return html`<${Inbox} />`;
    default: return html`<p>${t("app.empty")}</p>`;
  }
}

function InboxLabel() {
  const box = useInbox();
  return html`${t("nav.inbox")}${box.unread ? html` <span class="pill" aria-label=${t("inbox.unread", { n: box.unread })}>${box.unread}</span>` : ""}`;
}

startConsole({
  title: () => t("sales.title"),
  roles: ["sales_rep", "sales_manager", "general_manager"],
  nav: (user) => [
    { href: "#/", label: t("nav.today") }, { href: "#/leads", label: isManager(user) ? t("leads.team") : t("nav.leads") }, { href: "#/pool", label: t("nav.pool") },
    { href: "#/customers", label: t("nav.customers") }, { href: "#/pipeline", label: t("nav.pipeline") },
    { href: "#/quotes", label: t("nav.quotes") }, { href: "#/approvals", label: t("nav.approvals") },
    { href: "#/contracts", label: t("nav.contracts") }, { href: "#/inbox", label: html`<${InboxLabel} />` },
  ],
  view: (route, user) => html`<${View} route=${route} user=${user} />`,
});
