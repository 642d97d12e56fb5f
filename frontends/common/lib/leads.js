// When an owned lead goes back to the pool: the same rule as the leads service's recycle scan
// (leads/domain/recycle.py), computed here from the lead and its team's pool policy, because the
// lead API does not return the date itself.
export const OPEN = ["new", "contacted", "qualified"];

export function daysFor(policy, tier) {
  const t = (policy.tier_days || {})[tier || ""] || {};
  return [Number(t.no_follow_up ?? policy.recycle_no_follow_up_days), Number(t.no_conversion ?? policy.recycle_no_conversion_days)];
}

export function recycleAt(lead, policy) {
  if (!lead.assigned_at || !OPEN.includes(lead.status) || lead.locked) return null;
  const [noFollowUp, noConversion] = daysFor(policy, lead.tier);
  const assigned = new Date(lead.assigned_at).getTime();
  const started = Math.max(assigned, lead.last_follow_up_at ? new Date(lead.last_follow_up_at).getTime() : 0);
  const day = 86400000;
  return new Date(Math.min(started + noFollowUp * day, assigned + noConversion * day));
}

export function daysLeft(lead, policy, now = Date.now()) {
  const at = recycleAt(lead, policy);
  return at === null ? null : Math.floor((at.getTime() - now) / 86400000);
}
