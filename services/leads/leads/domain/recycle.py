"""The recycle scan run by the worker's scheduler: warn owners K days before a lead goes back to
the pool, then recycle it. Idempotent: a warning is sent once per recycle time (`warned_for`), a
lead is recycled by a conditional UPDATE that only succeeds while the owner and the clock it was
judged on are unchanged, so a follow-up logged meanwhile, a lock, or a second worker make it a
no-op."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from ..models import leads
from . import load, policy
from .actor import SYSTEM
from .records import OPEN, event_fields, get, history
from .util import aware


def watched(row) -> bool:
    """Whether the recycle scan watches this lead: owned, open, not locked, with an assignment time
    (the same conditions as the scan's query)."""
    return (row["status"] in OPEN and row["owner_id"] is not None and not row["locked"]
            and row["assigned_at"] is not None)


def due(row, pol: dict) -> tuple | None:
    """(recycle_at, rule) for a lead the scan watches; None for any other."""
    if not watched(row):
        return None
    no_follow_up, no_conversion = policy.days_for(pol, row["tier"])
    assigned = aware(row["assigned_at"])
    started = max(filter(None, [assigned, aware(row["last_follow_up_at"])]))
    by_follow_up = started + timedelta(days=no_follow_up)
    by_conversion = assigned + timedelta(days=no_conversion)
    return (by_follow_up, "no_follow_up") if by_follow_up <= by_conversion else (by_conversion, "no_conversion")


def recycle_at(row, pol) -> datetime | None:
    """When the scan returns the lead to the pool unless somebody follows it up (converts it, locks
    it) first; None for a lead the scan does not watch. `pol` is the team's pool policy, or a
    function of the team id giving it (called only for a watched lead). The API shows this time."""
    if not watched(row):
        return None
    return due(row, pol(row["team_id"]) if callable(pol) else pol)[0]


def scan(runtime, batch: int = 500) -> dict:
    """One pass over owned, unlocked open leads. Each lead is handled in its own transaction."""
    counts = {"warned": 0, "recycled": 0}
    now = runtime.clock.now()
    last_id = 0
    policies: dict = {}
    while True:
        with runtime.uow() as uow:
            rows = uow.session.execute(select(
                leads.c.id, leads.c.owner_id, leads.c.status, leads.c.tier, leads.c.team_id, leads.c.assigned_at,
                leads.c.last_follow_up_at, leads.c.warned_for, leads.c.locked).where(
                leads.c.id > last_id, leads.c.status.in_(OPEN), leads.c.owner_id.is_not(None),
                leads.c.locked.is_(False), leads.c.assigned_at.is_not(None)).order_by(leads.c.id).limit(batch)).mappings().all()
            for team_id in {r["team_id"] for r in rows} - set(policies):
                policies[team_id] = policy.load(uow.session, team_id)
        if not rows:
            return counts
        last_id = rows[-1]["id"]
        for r in rows:
            pol = policies[r["team_id"]]
            at, rule = due(r, pol)  # the API's recycle_at is the same time (recycle_at below)
            if now >= at:
                counts["recycled"] += _recycle(runtime, r, rule, pol, now)
            elif now >= at - timedelta(days=float(pol["warn_days_before"])) and aware(r["warned_for"]) != at:
                counts["warned"] += _warn(runtime, r, at, rule, now)


def _unchanged(r):
    return and_(leads.c.id == r["id"], leads.c.owner_id == r["owner_id"], leads.c.status == r["status"],
                leads.c.locked.is_(False), leads.c.assigned_at == r["assigned_at"],
                leads.c.last_follow_up_at.is_(None) if r["last_follow_up_at"] is None
                else leads.c.last_follow_up_at == r["last_follow_up_at"])


def _warn(runtime, r, at, rule, now) -> int:
    with runtime.uow() as uow:
        n = uow.session.execute(update(leads).where(_unchanged(r), or_(leads.c.warned_for.is_(None),
                                                                        leads.c.warned_for != at))
                                .values(warned_for=at)).rowcount
        if n != 1:
            return 0
        history(uow.session, r["id"], "recycle_warning", now, SYSTEM, reason=f"{rule}: recycled at {at.isoformat()}")
        row = get(uow.session, r["id"])
        uow.emit("lead.recycle_warning", {**event_fields(row, uow.session), "recycle_at": at, "rule": rule},
                 aggregate_type="lead", aggregate_id=r["id"])
        uow.commit()
        return 1


def _recycle(runtime, r, rule, pol, now) -> int:
    with runtime.uow() as uow:
        s = uow.session
        row = get(s, r["id"])
        cooldown = timedelta(days=float(pol["reclaim_cooldown_days"]))
        n = s.execute(update(leads).where(_unchanged(r)).values(
            status="pooled", stage=r["status"], owner_id=None, owner_name=None, pooled_at=now, warned_for=None,
            cooldown_user_id=r["owner_id"], cooldown_until=now + cooldown, updated_at=now)).rowcount
        if n != 1:
            return 0
        load.moved(s, r["owner_id"], r["status"], None, "pooled")
        history(s, r["id"], "recycled", now, SYSTEM, from_owner=r["owner_id"], reason=rule)
        uow.emit("lead.recycled", {**event_fields(row, uow.session), "owner_id": None, "previous_owner_id": r["owner_id"],
                                   "rule": rule}, aggregate_type="lead", aggregate_id=r["id"])
        uow.commit()
        return 1
