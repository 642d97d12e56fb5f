// Managers: funnel and forecast, sales by rep, campaign ROI, SLA and CSAT trends; each a chart
// first and its table second (the table is the chart's accessible text as well).
import { html, useState, startConsole, useAsync, Loading, Table, Field, BarChart, LineChart } from "../common/lib/ui.js";
import { api } from "../common/lib/api.js";
import { Person, usePeople } from "../common/lib/people.js";
import { t, addMessages, money, num, pct } from "../common/lib/i18n.js";
import { messages } from "./messages.js";

addMessages(messages);
const isoDaysAgo = (d) => new Date(Date.now() - d * 86400000).toISOString().slice(0, 10);

function Section({ id, title, children }) {
  return html`<section class="card" aria-labelledby=${id}><h3 id=${id}>${title}</h3>${children}</section>`;
}

function Funnel({ since }) {
  const state = useAsync(() => api("sales", "/v1/reports/funnel", { query: { since } }), [since]);
  return html`<${Section} id="funnel" title=${t("m.funnel")}><${Loading} state=${state}>${(r) => html`
    <${BarChart} title=${t("m.funnel")} series=${[t("m.reached"), t("m.now")]}
      bars=${r.stages.map((s) => ({ label: t(`stage.${s.stage}`), values: [s.reached, s.count] }))} format=${(v) => num(v)} />
    <${Table} caption=${t("m.funnelTable", { rate: pct(r.win_rate, 1) })} rowKey=${(s) => s.stage} rows=${r.stages} columns=${[
      { label: t("m.stage"), render: (s) => t(`stage.${s.stage}`) },
      { label: t("m.reached"), num: true, render: (s) => num(s.reached) },
      { label: t("m.now"), num: true, render: (s) => num(s.count) },
      { label: t("m.amount"), num: true, render: (s) => money(s.amount_base, r.base_currency) },
      { label: t("m.conversion"), num: true, render: (s) => pct(s.conversion_to_next, 1) },
    ]} />`}</${Loading}></${Section}>`;
}

function Forecast() {
  const state = useAsync(() => api("sales", "/v1/reports/forecast"), []);
  return html`<${Section} id="forecast" title=${t("m.forecast")}><${Loading} state=${state}>${(r) => html`
    <${BarChart} title=${t("m.forecast")} series=${[t("m.pipeline"), t("m.weighted")]}
      bars=${r.months.map((m) => ({ label: m.month === "unscheduled" ? t("m.unscheduled") : m.month, values: [Number(m.pipeline_base), Number(m.weighted_base)] }))}
      format=${(v) => num(v)} />
    <${Table} caption=${t("m.forecastTable", { total: money(r.total_weighted_base, r.base_currency) })} rowKey=${(m) => m.month} rows=${r.months} columns=${[
      { label: t("m.month"), render: (m) => (m.month === "unscheduled" ? t("m.unscheduled") : m.month) },
      { label: t("m.count"), num: true, key: "count" },
      { label: t("m.pipeline"), num: true, render: (m) => money(m.pipeline_base, r.base_currency) },
      { label: t("m.weighted"), num: true, render: (m) => money(m.weighted_base, r.base_currency) },
    ]} />`}</${Loading}></${Section}>`;
}

function ByRep({ since }) {
  const state = useAsync(() => api("sales", "/v1/reports/sales-by-rep", { query: { since } }), [since]);
  const name = usePeople(state.data ? state.data.reps.map((x) => x.owner_id) : []);
  return html`<${Section} id="reps" title=${t("m.byRep")}><${Loading} state=${state}>${(r) => html`
    <${BarChart} title=${t("m.byRep")} series=${[t("m.signed"), t("m.collected")]}
      bars=${r.reps.map((x) => ({ label: name(x.owner_id), values: [Number(x.amount_base), Number(x.collected_base)] }))} format=${(v) => num(v)} />
    <${Table} caption=${t("m.byRep")} rowKey=${(x) => x.owner_id} rows=${r.reps} columns=${[
      { label: t("m.rep"), render: (x) => html`<${Person} id=${x.owner_id} />` }, { label: t("m.contracts"), num: true, key: "contracts" },
      { label: t("m.signed"), num: true, render: (x) => money(x.amount_base, r.base_currency) },
      { label: t("m.collected"), num: true, render: (x) => money(x.collected_base, r.base_currency) },
    ]} />`}</${Loading}></${Section}>`;
}

function Campaigns() {
  const state = useAsync(async () => {
    const list = await api("leads", "/v1/campaigns");
    return Promise.all(list.items.map((c) => api("leads", `/v1/campaigns/${c.id}/roi`)));
  }, []);
  return html`<${Section} id="roi" title=${t("m.roi")}><${Loading} state=${state}>${(rows) => html`
    ${rows.length > 0 && html`<${BarChart} title=${t("m.roi")} series=${[t("m.cost"), t("m.revenue")]}
      bars=${rows.map((x) => ({ label: x.name, values: [Number(x.cost), Number(x.revenue)] }))} format=${(v) => num(v)} />`}
    <${Table} caption=${t("m.roi")} rowKey=${(x) => x.campaign_id} rows=${rows} columns=${[
      { label: t("m.campaign"), key: "name" }, { label: t("m.leads"), num: true, key: "leads" },
      { label: t("m.converted"), num: true, key: "converted_leads" }, { label: t("m.won"), num: true, key: "won_contracts" },
      { label: t("m.cost"), num: true, render: (x) => money(x.cost, x.currency) },
      { label: t("m.revenue"), num: true, render: (x) => money(x.revenue, x.currency) },
      { label: t("m.cpl"), num: true, render: (x) => money(x.cost_per_lead, x.currency) },
      { label: "ROI", num: true, render: (x) => pct(x.roi, 0) },
    ]} />`}</${Loading}></${Section}>`;
}

function ServiceTrends({ since }) {
  const sla = useAsync(() => api("service-desk", "/v1/reports/sla", { query: { group_by: "week", from: since } }), [since]);
  const csat = useAsync(() => api("service-desk", "/v1/reports/csat", { query: { group_by: "week", from: since } }), [since]);
  return html`<${Section} id="sla" title=${t("m.sla")}><${Loading} state=${sla}>${(r) => html`
      <${LineChart} title=${t("m.sla")} max=${1} series=${[t("m.within")]} format=${(v) => pct(v)}
        points=${r.rows.map((x) => ({ label: x.key, values: [x.within_share] }))} />
      <${Table} caption=${t("m.sla")} rowKey=${(x) => x.key} rows=${r.rows} columns=${[
        { label: t("m.week"), key: "key" }, { label: t("m.timers"), num: true, key: "total" },
        { label: t("m.kept"), num: true, key: "within" }, { label: t("m.breached"), num: true, key: "breached" },
        { label: t("m.running"), num: true, key: "running" }, { label: t("m.within"), num: true, render: (x) => pct(x.within_share, 1) },
      ]} />`}</${Loading}></${Section}>
    <${Section} id="csat" title=${t("m.csat")}><${Loading} state=${csat}>${(r) => html`
      <${LineChart} title=${t("m.csat")} max=${5} series=${[t("m.average")]} format=${(v) => num(v, 1)}
        points=${r.groups.map((x) => ({ label: x.key, values: [x.average] }))} />
      <${Table} caption=${t("m.csat")} rowKey=${(x) => x.key} rows=${r.groups} columns=${[
        { label: t("m.week"), key: "key" }, { label: t("m.requested"), num: true, key: "requested" },
        { label: t("m.answered"), num: true, key: "answered" }, { label: t("m.rate"), num: true, render: (x) => pct(x.response_rate, 0) },
        { label: t("m.average"), num: true, render: (x) => num(x.average, 2) },
      ]} />`}</${Loading}></${Section}>`;
}

function Dashboard({ section }) {
  const [days, setDays] = useState("90");
  const since = isoDaysAgo(Number(days));
  return html`<h2>${t(`nav.${section}`)}</h2>
    <div class="row" style="margin-bottom:12px"><${Field} label=${t("m.period")}><select value=${days} onChange=${(e) => setDays(e.target.value)}>
      ${["30", "90", "365"].map((d) => html`<option value=${d}>${t("m.lastDays", { n: d })}</option>`)}</select></${Field}></div>
    ${section === "sales" && html`<${Funnel} since=${since} /><${Forecast} /><${ByRep} since=${since} />`}
    ${section === "marketing" && html`<${Campaigns} />`}
    ${section === "service" && html`<${ServiceTrends} since=${since} />`}`;
}

startConsole({
  title: () => t("mg.title"),
  roles: ["general_manager", "sales_manager", "service_supervisor"],
  nav: () => [{ href: "#/", label: t("nav.sales") }, { href: "#/marketing", label: t("nav.marketing") },
              { href: "#/service", label: t("nav.service") }],
  view: (route) => {
    const s = route.parts[0];
    return html`<${Dashboard} key=${s || "sales"} section=${s === "marketing" || s === "service" ? s : "sales"} />`;
  },
});
