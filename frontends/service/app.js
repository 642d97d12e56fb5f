// Service desk: queue views with SLA countdowns, the ticket page with the customer's context,
// replies and internal notes, escalation to the queue's supervisor, reassignment, and the
// supervisor's breach list.
import { html, useState, useEffect, useRef, startConsole, useAsync, useAction, Loading, Table, Field, Badge, ErrorBox, SlaCountdown, say } from "../common/lib/ui.js";
import { api, all } from "../common/lib/api.js";
import { Person } from "../common/lib/people.js";
import { t, addMessages, money, date, dateTime } from "../common/lib/i18n.js";
import { messages } from "./messages.js";

addMessages(messages);
const status = (s) => t(`status.${s}`);
const has = (user, ...roles) => user.roles.some((r) => r === "admin" || roles.includes(r));
const PRIORITY_TONE = { urgent: "red", high: "amber", normal: "", low: "muted" };

function TicketTable({ caption, rows }) {
  return html`<${Table} caption=${caption} rows=${rows} empty=${t("tk.none")} columns=${[
    { label: "#", render: (r) => html`<a href=${`#/tickets/${r.id}`}>#${r.id} ${r.subject}</a>` },
    { label: t("tk.queue"), render: (r) => t(`queue.${r.queue}`) },
    { label: t("tk.priority"), render: (r) => html`<${Badge} tone=${PRIORITY_TONE[r.priority]}>${t(`prio.${r.priority}`)}</${Badge}>` },
    { label: t("tk.tier"), key: "tier" },
    { label: t("tk.status"), render: (r) => status(r.status) },
    { label: t("tk.assignee"), render: (r) => html`<${Person} id=${r.assignee_id} />` },
    { label: t("sla.first"), render: (r) => html`<${SlaCountdown} timer=${r.sla && r.sla.first_response} />` },
    { label: t("sla.resolution"), render: (r) => html`<${SlaCountdown} timer=${r.sla && r.sla.resolution} />` },
  ]} />`;
}

function Queues({ user, query }) {
  const view = query.queue || (has(user, "service_supervisor") ? "all" : "mine");
  const queues = useAsync(() => api("service-desk", "/v1/queues"), []);
  const tickets = useAsync(async () => {
    const filter = view === "mine" ? { assignee: user.id } : view === "all" ? {} : { queue: view };
    const lists = await Promise.all(["open", "pending"].map((s) => all("service-desk", "/v1/tickets", { ...filter, status: s })));
    return lists.flat();
  }, [view, user.id]);
  return html`<h2>${t("nav.queues")}</h2>
    <${Loading} state=${queues}>${(qs) => html`<div class="stats">
      <a class="stat" href="#/?queue=mine" aria-current=${view === "mine" ? "true" : undefined}>
        <span class="count">${tickets.data && view === "mine" ? tickets.data.length : "›"}</span><span>${t("q.mine")}</span></a>
      ${qs.map((q) => html`<a class="stat ${q.waiting ? "amber" : ""}" href=${`#/?queue=${q.name}`} aria-current=${view === q.name ? "true" : undefined}>
        <span class="count">${q.open}</span><span>${t(`queue.${q.name}`)} · ${t("q.waiting", { n: q.waiting })}</span></a>`)}
    </div>`}</${Loading}>
    <${Loading} state=${tickets}>${(rows) => html`<${TicketTable} rows=${rows}
      caption=${view === "mine" ? t("q.mine") : view === "all" ? t("q.all") : t(`queue.${view}`)} />`}</${Loading}>`;
}

function Breaches() {
  const state = useAsync(() => all("service-desk", "/v1/tickets", { breached: "true" }), []);
  return html`<h2>${t("nav.breaches")}</h2>
    <${Loading} state=${state}>${(rows) => html`<${TicketTable} caption=${t("br.caption")}
      rows=${rows.filter((r) => !["resolved", "closed"].includes(r.status))} />`}</${Loading}>`;
}

function Ticket({ id, user }) {
  const state = useAsync(async () => {
    const ticket = await api("service-desk", `/v1/tickets/${id}`);
    const agents = has(user, "service_supervisor") ? await api("service-desk", "/v1/agents") : [];
    return { ticket, agents };
  }, [id]);
  return html`<${Loading} state=${state}>${({ ticket, agents }) => html`
    <h2>#${ticket.id} ${ticket.subject} <${Badge}>${status(ticket.status)}</${Badge}></h2>
    <div class="grid">
      <section class="card" aria-labelledby="tk-facts"><h3 id="tk-facts">${t("tk.facts")}</h3>
        <dl class="facts">
          <dt>${t("tk.queue")}</dt><dd>${t(`queue.${ticket.queue}`)}</dd>
          <dt>${t("tk.priority")}</dt><dd><${Badge} tone=${PRIORITY_TONE[ticket.priority]}>${t(`prio.${ticket.priority}`)}</${Badge}></dd>
          <dt>${t("tk.assignee")}</dt><dd><${Person} id=${ticket.assignee_id} /></dd>
          <dt>${t("tk.channel")}</dt><dd>${ticket.channel}</dd>
          <dt>${t("tk.created")}</dt><dd>${dateTime(ticket.created_at)}</dd>
          <dt>${t("sla.first")}</dt><dd><${SlaCountdown} timer=${ticket.sla.first_response} /></dd>
          <dt>${t("sla.resolution")}</dt><dd><${SlaCountdown} timer=${ticket.sla.resolution} /></dd>
          ${ticket.escalated_to && html`<dt>${t("tk.escalated")}</dt><dd><${Badge} tone="red"><${Person} id=${ticket.escalated_to} /></${Badge}></dd>`}
        </dl>
        ${ticket.description && html`<p>${ticket.description}</p>`}
      </section>
      <${CustomerCard} c=${ticket.customer} />
    </div>
    <section class="card" aria-labelledby="tk-thread"><h3 id="tk-thread">${t("tk.thread")}</h3>
      <ol class="thread">${ticket.comments.map((c) => html`<li class=${c.public ? "" : "internal"}>
        <strong>${c.automatic ? t("tk.auto") : c.from_customer ? t("tk.customer") : html`<${Person} id=${c.author_id} />`}</strong>
        ${!c.public && html` <${Badge} tone="amber">${t("tk.internal")}</${Badge}>`}
        <span class="muted"> ${dateTime(c.created_at)}</span><p>${c.body}</p></li>`)}</ol>
      ${!["closed"].includes(ticket.status) && html`<${Reply} ticket=${ticket} onDone=${state.reload} />`}
    </section>
    <div class="grid">
      <${StatusActions} ticket=${ticket} onDone=${state.reload} />
      ${LIVE.includes(ticket.status) && !ticket.escalated_to && html`<${Escalate} ticket=${ticket} onDone=${state.reload} />`}
      ${agents.length > 0 && !["resolved", "closed"].includes(ticket.status) && html`<${Reassign} ticket=${ticket} agents=${agents} onDone=${state.reload} />`}
    </div>`}</${Loading}>`;
}

function CustomerCard({ c }) {
  if (!c || !c.known) return html`<section class="card"><h3>${t("cu.title")}</h3><p class="muted">${t("cu.unknown")}</p></section>`;
  return html`<section class="card" aria-labelledby="cu-h"><h3 id="cu-h">${t("cu.title")}: ${c.name}</h3>
    <dl class="facts">
      <dt>${t("tk.tier")}</dt><dd><${Badge} tone=${c.tier === "gold" ? "amber" : ""}>${c.tier || "—"}</${Badge}></dd>
      <dt>${t("cu.owner")}</dt><dd><${Person} id=${c.owner_id} /></dd>
      <dt>${t("cu.phone")}</dt><dd>${c.phone || "—"}</dd>
    </dl>
    <h4>${t("cu.contracts")}</h4>
    ${c.active_contracts.length ? html`<ul>${c.active_contracts.map((k) => html`<li>#${k.contract_id} ${money(k.amount, k.currency)}
      · ${status(k.status)} · ${date(k.start_date)} – ${date(k.end_date)}</li>`)}</ul>` : html`<p class="muted">—</p>`}
    <h4>${t("cu.past")}</h4>
    ${c.past_tickets.length ? html`<ul>${c.past_tickets.map((p) => html`<li><a href=${`#/tickets/${p.id}`}>#${p.id} ${p.subject}</a>
      · ${status(p.status)} · ${date(p.created_at)}</li>`)}</ul>` : html`<p class="muted">—</p>`}
  </section>`;
}

function Reply({ ticket, onDone }) {
  const [body, setBody] = useState("");
  const [internal, setInternal] = useState(false);
  const act = useAction(() => { setBody(""); say(internal ? t("tk.noted") : t("tk.replied")); onDone(); });
  const submit = (e) => { e.preventDefault(); act.run(() => api("service-desk", `/v1/tickets/${ticket.id}/comments`,
    { method: "POST", body: { body, public: !internal } })); };
  return html`<form class="stack" onSubmit=${submit}>
    <${Field} label=${t("tk.reply")}><textarea required value=${body} onInput=${(e) => setBody(e.target.value)}></textarea></${Field}>
    <label><input type="checkbox" checked=${internal} onChange=${(e) => setInternal(e.target.checked)} /> ${t("tk.internalNote")}</label>
    <${ErrorBox} error=${act.error} />
    <div class="actions"><button type="submit" disabled=${act.busy}>${internal ? t("tk.addNote") : t("tk.send")}</button></div>
  </form>`;
}

const LIVE = ["new", "open", "pending"];

// Escalate by hand (the SLA scan does it on a breach): a modal dialog asks for an optional reason.
function Escalate({ ticket, onDone }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const dialog = useRef(null);
  const opener = useRef(null);
  const act = useAction((t2) => { setOpen(false); say(t("es.done", { id: ticket.id, to: t2.escalated_to })); onDone(); });
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const close = () => { setOpen(false); act.setError(null); if (opener.current) opener.current.focus(); };
  const submit = (e) => { e.preventDefault(); act.run(() => api("service-desk", `/v1/tickets/${ticket.id}/escalate`,
    { method: "POST", body: { reason: reason.trim() || null } })); };
  return html`<section class="card" aria-labelledby="es-h"><h3 id="es-h">${t("es.title")}</h3>
    <p class="muted">${t("es.hint")}</p>
    <button type="button" class="secondary" ref=${opener} onClick=${() => setOpen(true)}>${t("es.open")}</button>
    <dialog ref=${dialog} aria-labelledby="es-dh" onClose=${() => open && close()}>
      <form class="stack" onSubmit=${submit}>
        <h3 id="es-dh">${t("es.dialog", { id: ticket.id })}</h3>
        <${Field} label=${t("es.reason")} hint=${t("es.reasonHint")}><textarea maxlength="2000" value=${reason}
          onInput=${(e) => setReason(e.target.value)}></textarea></${Field}>
        <${ErrorBox} error=${act.error} />
        <div class="actions">
          <button type="submit" class="danger" disabled=${act.busy}>${t("es.submit")}</button>
          <button type="button" class="secondary" onClick=${close}>${t("es.cancel")}</button>
        </div>
      </form>
    </dialog></section>`;
}

const MOVES = { open: ["pending", "resolved"], pending: ["open", "resolved"], resolved: ["closed", "open"], closed: ["open"] };

function StatusActions({ ticket, onDone }) {
  const [note, setNote] = useState("");
  const act = useAction(() => { setNote(""); onDone(); });
  const move = (to) => act.run(async () => {
    await api("service-desk", `/v1/tickets/${ticket.id}/status`, { method: "POST", body: { status: to, note: note || undefined } });
    say(t(`mv.done.${to}`, { id: ticket.id }));
  });
  return html`<section class="card" aria-labelledby="st-h"><h3 id="st-h">${t("tk.statusTitle")}</h3>
    <${Field} label=${t("tk.statusNote")}><input value=${note} onInput=${(e) => setNote(e.target.value)} /></${Field}>
    <${ErrorBox} error=${act.error} />
    <div class="actions" style="margin-top:8px">${(MOVES[ticket.status] || []).map((to) => html`
      <button type="button" class=${to === "resolved" ? "" : "secondary"} disabled=${act.busy} onClick=${() => move(to)}>${t(`mv.${ticket.status}.${to}`)}</button>`)}</div>
  </section>`;
}

function Reassign({ ticket, agents, onDone }) {
  const choices = agents.filter((a) => a.active && a.user_id !== ticket.assignee_id);
  const [to, setTo] = useState(choices[0] ? choices[0].user_id : "");
  const act = useAction(() => { say(t("ra.done", { id: ticket.id, to })); onDone(); });
  if (!choices.length) return null;
  return html`<section class="card" aria-labelledby="ra-h"><h3 id="ra-h">${t("ra.title")}</h3>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); act.run(() => api("service-desk", `/v1/tickets/${ticket.id}/assignment`, { method: "POST", body: { assignee_id: to } })); }}>
      <${Field} label=${t("ra.to")}><select value=${to} onChange=${(e) => setTo(e.target.value)}>
        ${choices.map((a) => html`<option value=${a.user_id}>${a.name || a.user_id} (${a.open_count}/${a.max_open})</option>`)}</select></${Field}>
      <button type="submit" disabled=${act.busy}>${t("ra.submit")}</button>
    </form><${ErrorBox} error=${act.error} />
    <p class="muted">${t("ra.escalate")}</p></section>`;
}

startConsole({
  title: () => t("sd.title"),
  roles: ["service_agent", "service_supervisor"],
  nav: (user) => [{ href: "#/", label: t("nav.queues") },
                  ...(has(user, "service_supervisor") ? [{ href: "#/breaches", label: t("nav.breaches") }] : [])],
  view: (route, user) => {
    const [head, id] = route.parts;
    if (head === "tickets" && id) return html`<${Ticket} id=${id} user=${user} />`;
    if (head === "breaches") return html`<${Breaches} />`;
    return html`<${Queues} user=${user} query=${route.query} />`;
  },
});
