// The shared components of the department consoles: the shell (skip link, header, navigation,
// language switch, user), the login gate, tables, forms, status messages, SLA countdowns.
import { html, render, cloneElement, useState, useEffect, useCallback, useRef } from "./html.js";
import { t, lang, setLang, onLangChange, LANGS, duration } from "./i18n.js";
import { currentUser, onAuthChange, logout, loadConfig, devLogin, startOidcLogin, completeOidcLogin } from "./auth.js";
import { ApiError } from "./api.js";

// ---- hooks ---------------------------------------------------------------------------------------

export function useRoute() {
  const parse = () => {
    const raw = location.hash.replace(/^#\/?/, "");
    const [p, q] = raw.split("?");
    return { parts: p ? p.split("/").map(decodeURIComponent) : [], query: Object.fromEntries(new URLSearchParams(q || "")) };
  };
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

// data loaded from the APIs: { data, error, loading, reload }
export function useAsync(fn, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve().then(fn).then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }));
    return () => { live = false; };
  }, [...deps, tick]);
  return { ...state, reload: useCallback(() => setTick((n) => n + 1), []) };
}

export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { const id = setInterval(() => setNow(Date.now()), ms); return () => clearInterval(id); }, [ms]);
  return now;
}

// run an action, keep its error and a status message for the live region
export function useAction(onDone) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true); setError(null);
    try { const r = await fn(); onDone && onDone(r); return r; }
    catch (e) { setError(e); return undefined; }
    finally { setBusy(false); }
  };
  return { busy, error, run, setError };
}

// ---- status messages -------------------------------------------------------------------------------

let announce = () => {};
export function say(message) { announce(message); }

function LiveRegion() {
  const [msg, setMsg] = useState("");
  useEffect(() => { announce = (m) => { setMsg(""); setTimeout(() => setMsg(m), 30); }; }, []);
  useEffect(() => { if (!msg) return; const id = setTimeout(() => setMsg(""), 6000); return () => clearTimeout(id); }, [msg]);
  return html`<div class="toast ${msg ? "show" : ""}" role="status" aria-live="polite">${msg}</div>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 403) return html`<p class="error" role="alert">${t("app.forbidden")}</p>`;
  const fields = error instanceof ApiError ? Object.entries(error.fields || {}) : [];
  return html`<div class="error" role="alert">
    <p>${error.message || t("app.error")}</p>
    ${fields.length > 0 && html`<p>${t("app.fieldErrors")}</p><ul>${fields.map(([k, v]) =>
      html`<li><strong>${k}</strong>: ${Array.isArray(v) ? v.join(" ") : typeof v === "object" ? JSON.stringify(v) : v}</li>`)}</ul>`}
  </div>`;
}

export function Loading({ state, children }) {
  if (state.loading && !state.data) return html`<p class="muted" aria-busy="true">${t("app.loading")}</p>`;
  if (state.error) return html`<${ErrorBox} error=${state.error} />
    <button type="button" class="secondary" onClick=${state.reload}>${t("app.retry")}</button>`;
  return children(state.data);
}

// ---- building blocks ---------------------------------------------------------------------------------

// columns: [{ label, key | render(row), num: true }]
export function Table({ caption, columns, rows, empty, rowKey = (r) => r.id }) {
  if (!rows || rows.length === 0) return html`<p class="muted">${empty || t("app.empty")}</p>`;
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${`${t("chart.table")}: ${caption}`}>
    <table>
      <caption>${caption}</caption>
      <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.num ? "num" : ""}>${c.label}</th>`)}</tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${rowKey(r)}>${columns.map((c, i) => {
        const v = c.render ? c.render(r) : r[c.key];
        return i === 0 ? html`<th scope="row" class=${c.num ? "num" : ""}>${v}</th>` : html`<td class=${c.num ? "num" : ""}>${v ?? "—"}</td>`;
      })}</tr>`)}</tbody>
    </table></div>`;
}

let fieldSeq = 0;
// <Field label="..."> with exactly one input child: the label is tied to it by id
export function Field({ label, hint, children, id }) {
  const ref = useRef(id || `f${++fieldSeq}`);
  const child = Array.isArray(children) ? children[0] : children;
  const input = child && child.props ? cloneElement(child, { id: ref.current,
    "aria-describedby": hint ? `${ref.current}-hint` : undefined }) : child;
  return html`<div class="field"><label for=${ref.current}>${label}</label>${input}
    ${hint && html`<small id=${`${ref.current}-hint`} class="muted">${hint}</small>`}</div>`;
}

export function Stat({ href, count, label, tone }) {
  return html`<a class="stat ${tone || ""}" href=${href}><span class="count">${count ?? "…"}</span><span>${label}</span></a>`;
}

export function Badge({ tone, children }) {
  return html`<span class="badge ${tone || ""}">${children}</span>`;
}

// An SLA timer's countdown: green while there is time, amber once the warning time has passed
// (or under 20% of the target left), red when breached. Re-renders every second.
export function SlaCountdown({ timer, label }) {
  const now = useNow(1000);
  if (!timer) return html`<span class="muted">—</span>`;
  if (timer.met_at) return html`<${Badge} tone="ok">${label ? `${label}: ` : ""}✓</${Badge}>`;
  if (timer.paused) return html`<${Badge} tone="muted">${label ? `${label}: ` : ""}⏸ ${duration(timer.remaining_minutes ?? 0)}</${Badge}>`;
  const left = (new Date(timer.due_at).getTime() - now) / 60000;
  const warnAt = timer.warn_at ? new Date(timer.warn_at).getTime() : null;
  // amber from the service's own warning time (a share of the target, on the business calendar)
  const warned = warnAt !== null ? now >= warnAt : left < (timer.minutes || 0) * 0.2;
  const tone = left <= 0 || timer.breached_at ? "red" : warned || timer.warned_at ? "amber" : "ok";
  const word = tone === "red" ? t("sla.breached") : tone === "amber" ? t("sla.soon") : t("sla.ok");
  return html`<span class="badge ${tone}" title=${word}>
    ${label ? `${label}: ` : ""}${duration(left)}<span class="sr-only"> (${word})</span></span>`;
}

// ---- charts (hand-drawn SVG; each chart has a table beside it) -----------------------------------

// bars: [{ label, values: [n, ...] }], series: [label, ...]
export function BarChart({ title, bars, series, format = (v) => String(v) }) {
  const max = Math.max(1, ...bars.flatMap((b) => b.values.map((v) => Number(v) || 0)));
  const rowH = 16 * series.length + 14, labelW = 140, W = 560, H = bars.length * rowH + 24;
  return html`<figure class="chart">
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label=${title} preserveAspectRatio="xMinYMin meet">
      <title>${title}</title>
      ${bars.map((b, i) => html`<g transform="translate(0 ${i * rowH + 4})">
        <text x=${labelW - 6} y=${(16 * series.length - 3) / 2} text-anchor="end" dominant-baseline="middle" class="chart-label">${b.label}</text>
        ${b.values.map((v, j) => {
          const w = Math.max(0, ((Number(v) || 0) / max) * (W - labelW - 120));
          return html`<rect x=${labelW} y=${j * 16} width=${w} height="13" class=${`s${j}`} />
            <text x=${labelW + w + 4} y=${j * 16 + 10} class="chart-value">${format(v)}</text>`;
        })}</g>`)}
    </svg>
    ${series.length > 1 && html`<figcaption class="legend">${series.map((s, j) => html`<span><i class=${`s${j}`}></i>${s}</span>`)}</figcaption>`}
  </figure>`;
}

// points: [{ label, values: [n|null, ...] }] over time, series: [label, ...]; y in [0, max]
export function LineChart({ title, points, series, max, format = (v) => String(v) }) {
  const W = 560, H = 220, L = 48, B = 28, T = 10;
  const top = max ?? Math.max(1, ...points.flatMap((p) => p.values.map((v) => Number(v) || 0)));
  const x = (i) => L + (points.length <= 1 ? (W - L - 10) / 2 : (i * (W - L - 10)) / (points.length - 1));
  const y = (v) => T + (1 - v / top) * (H - B - T);
  return html`<figure class="chart">
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label=${title}>
      <title>${title}</title>
      <line x1=${L} y1=${H - B} x2=${W - 5} y2=${H - B} class="axis" />
      <line x1=${L} y1=${T} x2=${L} y2=${H - B} class="axis" />
      <text x=${L - 4} y=${T + 4} text-anchor="end" class="chart-value">${format(top)}</text>
      <text x=${L - 4} y=${H - B} text-anchor="end" class="chart-value">${format(0)}</text>
      ${points.map((p, i) => html`<text x=${x(i)} y=${H - 8} text-anchor="middle" class="chart-label">${p.label}</text>`)}
      ${series.map((_, j) => {
        const pts = points.map((p, i) => [i, p.values[j]]).filter(([, v]) => v !== null && v !== undefined);
        return html`<g class=${`s${j}`}>
          <polyline fill="none" points=${pts.map(([i, v]) => `${x(i)},${y(v)}`).join(" ")} />
          ${pts.map(([i, v]) => html`<circle cx=${x(i)} cy=${y(v)} r="3.5" />`)}</g>`;
      })}
    </svg>
    <figcaption class="legend">${series.map((s, j) => html`<span><i class=${`s${j}`}></i>${s}</span>`)}</figcaption>
  </figure>`;
}

// ---- the shell and the login gate ----------------------------------------------------------------

function LangSwitch() {
  return html`<label class="lang"><span class="sr-only">${t("app.language")}</span>
    <select aria-label=${t("app.language")} value=${lang()} onChange=${(e) => setLang(e.target.value)}>
      ${LANGS.map(([v, n]) => html`<option value=${v} lang=${v}>${n}</option>`)}
    </select></label>`;
}

function Shell({ title, nav, user, route, children }) {
  const current = `#/${route.parts[0] || ""}`;
  useEffect(() => { document.title = `${title} · CRM`; }, [title]);
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>${t("app.skip")}</a>
    <header class="top">
      <div class="brand"><a href="../" aria-label=${t("app.consoles")}>CRM</a><span aria-hidden="true">·</span><span>${title}</span></div>
      <div class="tools">
        <${LangSwitch} />
        ${user && html`<span class="who" aria-label=${t("app.user")}>${user.name}</span>
          <button type="button" class="secondary" onClick=${() => logout()}>${t("app.logout")}</button>`}
      </div>
    </header>
    ${user && nav && html`<nav class="tabs" aria-label=${t("app.navigation")}><ul>
      ${nav.map((n) => html`<li><a href=${n.href} aria-current=${current === n.href ? "page" : undefined}>${n.label}
        ${n.badge ? html` <span class="pill">${n.badge}</span>` : ""}</a></li>`)}</ul></nav>`}
    <main id="main" tabindex="-1">${children}</main>
    <${LiveRegion} />`;
}

function Login({ roles, onError }) {
  const cfg = useAsync(() => loadConfig(), []);
  const users = useAsync(() => fetch("../common/dev-users.json").then((r) => r.json()), []);
  const [err, setErr] = useState(null);
  const note = sessionStorage.getItem("crm.logout") === "expired";
  return html`<section class="card login" aria-labelledby="login-h">
    <h2 id="login-h">${t("login.title")}</h2>
    ${note && html`<p class="warn">${t("login.expired")}</p>`}
    ${err && html`<p class="error" role="alert">${t("login.failed", { msg: err })}</p>`}
    <${Loading} state=${cfg}>${(c) => c.auth === "oidc"
      ? html`<button type="button" onClick=${() => startOidcLogin(c.oidc).catch((e) => setErr(e.message))}>${t("login.oidc")}</button>`
      : html`<p>${t("login.dev")}</p>
        <${Loading} state=${users}>${(list) => html`<ul class="pick">${list
          .filter((u) => u.roles.some((r) => roles.includes(r) || r === "admin"))
          .map((u) => html`<li><button type="button" class="secondary" onClick=${() =>
            devLogin(u).then(() => sessionStorage.removeItem("crm.logout"), (e) => setErr(e.message))}>
            ${t("login.as", { name: u.name })} <small>(${u.roles.map((r) => t(`role.${r}`)).join(", ")})</small></button></li>`)}
        </ul>`}</${Loading}>`}</${Loading}>
  </section>`;
}

// startConsole({ title: () => string, roles: [...], nav: (user) => [...], view: (route, user) => vnode })
export function startConsole(spec, mount = document.getElementById("app")) {
  function Root() {
    const [user, setUser] = useState(currentUser());
    const [, setL] = useState(lang());
    const [oidcErr, setOidcErr] = useState(null);
    const route = useRoute();
    useEffect(() => onAuthChange((u) => {
      setUser(u);
      // the login button is gone: put the keyboard focus at the start of the console's content
      setTimeout(() => { const m = document.getElementById("main"); if (m) m.focus(); }, 0);
    }), []);
    useEffect(() => onLangChange(setL), []);
    useEffect(() => {
      loadConfig().then((c) => c.auth === "oidc" && completeOidcLogin(c.oidc)).catch((e) => setOidcErr(e.message));
    }, []);
    const allowed = user && user.roles.some((r) => spec.roles.includes(r) || r === "admin");
    return html`<${Shell} title=${spec.title()} nav=${allowed ? spec.nav(user) : null} user=${user} route=${route}>
      ${oidcErr && html`<p class="error" role="alert">${t("login.failed", { msg: oidcErr })}</p>`}
      ${!user ? html`<${Login} roles=${spec.roles} />`
        : !allowed ? html`<p class="error" role="alert">${t("login.noRole")}</p>`
        : spec.view(route, user)}
    </${Shell}>`;
  }
  render(html`<${Root} />`, mount);
}

export { html, useState, useEffect, useCallback, useRef };
