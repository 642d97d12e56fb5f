// Names for user ids, from notify's staff directory (GET /notify/v1/people?id=a&id=b: name, roles,
// team; no contact data). One cache per page: the ids asked for during a render are fetched
// together once the render is over (at most 100 per request), each id once; an unknown id, or one
// the directory cannot give, shows as itself.
import { useLayoutEffect } from "preact/hooks";
import { html, useState } from "./html.js";
import { api } from "./api.js";

const MAX = 100; // the directory's cap per request
const names = new Map(); // id -> name (string) | null (unknown: show the id)
const queued = new Set();
const listeners = new Set();
let timer = null;

function flush() {
  timer = null;
  const ids = [...queued];
  queued.clear();
  for (let i = 0; i < ids.length; i += MAX) {
    const batch = ids.slice(i, i + MAX);
    api("notify", "/v1/people", { query: { id: batch } }).then(
      (people) => { for (const p of people) names.set(p.id, p.name || null); },
      () => {}, // no directory: ids stay ids
    ).finally(() => {
      for (const id of batch) if (!names.has(id)) names.set(id, null);
      for (const fn of [...listeners]) fn();
    });
  }
}

function want(id) {
  if (!id || names.has(id) || queued.has(id)) return;
  queued.add(id);
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
