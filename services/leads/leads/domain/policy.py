"""The pool policy: company default, overridden per team. Stored as a small JSON document per
scope ("default", "team:<id>") in `pool_policies`."""
from __future__ import annotations

from sqlalchemy import select

from ..models import pool_policies
from . import cache
from .util import upsert

DEFAULT = {
    "recycle_no_follow_up_days": 7,     # from the later of the last follow-up and the claim/assignment
    "recycle_no_conversion_days": 30,   # from the claim/assignment
    "tier_days": {},                    # e.g. {"A": {"no_follow_up": 14, "no_conversion": 60}}
    "warn_days_before": 2,
    "daily_claim_limit": 20,
    "reclaim_cooldown_days": 3,
    "new_entry_embargo_hours": 0,
    "lock_quota": 5,
}


def scope(team_id) -> str:
    return "default" if team_id is None else f"team:{team_id}"


def _stored(session, key: str) -> dict:
    return session.execute(select(pool_policies.c.settings).where(pool_policies.c.scope == key)).scalar() or {}


def load(session, team_id=None) -> dict:
    out = {**DEFAULT, **_stored(session, "default")}
    if team_id is not None:
        out.update(_stored(session, scope(team_id)))
    return out


def load_cached(session, team_id=None) -> dict:
    """`load` through the per-process configuration cache (domain/cache.py: cleared by `save` in
    this process, at most `cache.TTL` seconds old elsewhere): for showing `recycle_at` on every
    lead an intake or a list returns, not for the decisions of claims and the recycle scan."""
    return cache.get(session, f"pool_policy:{scope(team_id)}", lambda s: load(s, team_id))


def save(session, team_id, values: dict, now) -> dict:
    current = _stored(session, scope(team_id))
    current.update({k: v for k, v in values.items() if v is not None})
    upsert(session, pool_policies, {"scope": scope(team_id)}, {"settings": current, "updated_at": now})
    cache.clear()
    return load(session, team_id)


def days_for(policy: dict, tier: str | None) -> tuple[int, int]:
    """(days without follow-up, days without conversion) for a lead of this tier."""
    t = (policy.get("tier_days") or {}).get(tier or "", {})
    return (int(t.get("no_follow_up", policy["recycle_no_follow_up_days"])),
            int(t.get("no_conversion", policy["recycle_no_conversion_days"])))
