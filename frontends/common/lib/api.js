// The services' public APIs, through the gateway only: /leads/, /sales/, /service-desk/, /notify/.
import { getToken, logout } from "./auth.js";

// the consoles live under <base>/app/<console>/; the gateway's prefixes under <base>/
export const base = location.pathname.slice(0, location.pathname.indexOf("/app/"));

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title || problem.message)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    // flask-smorest puts field errors under errors.json / errors.query
    const e = this.problem.errors || {};
    this.fields = e.json || e.query || e;
  }
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x)); // ?id=a&id=b
    else if (v !== undefined && v !== null && v !== "") p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

export async function api(service, path, { method = "GET", body, query, signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${base}/${service}${path}${qs(query)}`, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await res.json().catch(() => null) : null;
  if (res.status === 401) logout({ expired: true });
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// GET every page of a limit/offset list (sales, service-desk), up to `max` rows
export async function all(service, path, query = {}, max = 500) {
  const out = [];
  for (let offset = 0; offset < max; offset += 100) {
    const page = await api(service, path, { query: { ...query, limit: 100, offset } });
    out.push(...page);
    if (page.length < 100) break;
  }
  return out;
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
// Calls onEvent(type, data, id) per event; reconnects after `retry` ms with the last id.
export function stream(service, path, onEvent, { query = {} } = {}) {
  const ctrl = new AbortController();
  let lastId = null, retry = 3000, stopped = false;
  async function once() {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${getToken()}` };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const res = await fetch(`${base}/${service}${path}${qs(query)}`, { headers, signal: ctrl.signal });
    if (!res.ok || !res.body) throw new ApiError(res.status, null);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let type = "message", data = "", id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const [k, ...rest] = line.split(":");
          const v = rest.join(":").replace(/^ /, "");
          if (k === "event") type = v;
          else if (k === "data") data += (data ? "\n" : "") + v;
          else if (k === "id") id = v;
          else if (k === "retry" && /^\d+$/.test(v)) retry = Number(v);
        }
        if (id) lastId = id;
        if (data) {
          let parsed = data;
          try { parsed = JSON.parse(data); } catch { /* plain text */ }
          onEvent(type, parsed, id);
        }
      }
    }
  }
  (async () => {
    while (!stopped) {
      try { await once(); } catch (e) { if (stopped) return; }
      await new Promise((r) => setTimeout(r, retry));
    }
  })();
  return () => { stopped = true; ctrl.abort(); };
}
