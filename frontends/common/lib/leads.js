// When an owned lead goes back to the pool: the leads API says it (`recycle_at`, computed by the
// recycle scan's own rule, null when the scan does not watch the lead); the consoles only count
// the days left.
export const OPEN = ["new", "contacted", "qualified"];
const DAY = 86400000;

export function daysLeft(lead, now = Date.now()) {
  if (!lead.recycle_at) return null;
  return Math.floor((new Date(lead.recycle_at).getTime() - now) / DAY);
}
