// Names for user ids, from notify's staff directory (GET /notify/v1/people?id=a&id=b: name, roles,
// team; no contact data). One cache per page: the ids asked for during a render are fetched
// together once the render is over (at most 100 per request), each id once; an unknown id shows as
// itself. A request that fails (the directory restarting, a dropped connection, a 5xx) is tried again
// after 0.5, 1 and 2 s; its ids show as themselves meanwhile, and for good only after the fourth
// failure (a 4xx other than 429 is not retried: asking again would get the same answer).
import { useLayoutEffect } from "preact/hooks";
import { html, useState } from "./html.js";
import { api } from "./api.js";

const MAX = 100; // the directory's cap per request
const RETRY_MS = [500, 1000, 2000]; // waits before the 2nd, 3rd and 4th try of a failed request
const names = new Map(); // id -> name (string) | null (unknown: show the id)
const queued = new Set();
const pending = new Set(); // queued or asked for, answer not in yet (or waiting to be asked again)
const listeners = new Set();
let timer = null;

function retryable(err) {
  const status = err && err.status;
  return !status || status === 429 || status >= 500; // network error (no status), busy, server error
}

// the batch's answer (no people: the request failed for good), then a re-render
function settle(batch, people = []) {
  for (const p of people) names.set(p.id, p.name || null);
  for (const id of batch) {
    pending.delete(id);
    if (!names.has(id)) names.set(id, null); // unknown to the directory, or no directory: ids stay ids
  }
  for (const fn of [...listeners]) fn();
}

function request(batch, tries) {
  api("notify", "/v1/people", { query: { id: batch } }).then(
    (people) => settle(batch, people),
    (err) => {
      if (tries < RETRY_MS.length && retryable(err)) setTimeout(() => request(batch, tries + 1), RETRY_MS[tries]);
      else settle(batch);
    },
  );
}

function flush() {
  timer = null;
  const ids = [...queued];
  queued.clear();
  for (let i = 0; i < ids.length; i += MAX) request(ids.slice(i, i + MAX), 0);
}

function want(id) {
  if (!id || names.has(id) || pending.has(id)) return;
  queued.add(id);
  pending.add(id);
  if (timer === null) timer = setTimeout(flush, 0);
}

// the name when known, else the id itself (sync: for plain-text places such as chart labels)
export function nameOf(id) {
  if (!id) return id;
  want(id);
  return names.get(id) || id;
}

// re-render when names arrive; returns nameOf
export function usePeople(ids = []) {
  const [, setTick] = useState(0);
  // subscribed in the commit, before the batch's request can start (flush waits for a timeout)
  useLayoutEffect(() => {
    const on = () => setTick((n) => n + 1);
    listeners.add(on);
    return () => listeners.delete(on);
  }, []);
  for (const id of ids) want(id);
  return nameOf;
}

// <Person id="rep-li" />: the colleague's name (the id on hover), "—" when there is none
export function Person({ id }) {
  const name = usePeople([id])(id);
  if (!id) return html`<span class="muted">—</span>`;
  return name === id ? html`<span class="person">${id}</span>` : html`<span class="person" title=${id}>${name}</span>`;
}
