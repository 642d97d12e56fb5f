"""SLA targets and timers. Targets are business minutes; a timer's warning falls at 80% and its
due time at 100% of its target, both in business time on the service's calendar. While a ticket
is pending its timers are paused: the business time they had left is kept and they resume from it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select

from ..models import calendars, sla_policies, ticket_slas
from .calendar import BusinessCalendar
from .common import GOLD, aware

TARGETS = ("first_response", "next_response", "resolution")
WARN_SHARE = 0.8
DAY = 9 * 60  # one business day of the default calendar (09:00-18:00)
# priority -> (first response, resolution) in business minutes; next response defaults to first response
DEFAULTS = {"urgent": (60, 4 * 60), "high": (4 * 60, DAY), "normal": (8 * 60, 3 * DAY), "low": (DAY, 5 * DAY)}


def default_targets(priority: str, tier: str | None) -> dict:
    first, resolution = DEFAULTS[priority]
    t = {"first_response": first, "next_response": first, "resolution": resolution}
    if tier == GOLD:
        t = {k: v // 2 for k, v in t.items()}
    return t


def targets_for(session, priority: str, tier: str | None) -> dict:
    """The policy for this priority and tier, else the priority's catch-all policy (tier "*",
    halved for gold), else the built-in defaults."""
    rows = {r["tier"]: r for r in session.execute(
        select(sla_policies).where(sla_policies.c.priority == priority,
                                   sla_policies.c.tier.in_([tier or "", "*"]))).mappings()}
    row = rows.get(tier or "")
    if row is None and "*" in rows:
        r = rows["*"]
        t = {"first_response": r["first_response_minutes"], "next_response": r["next_response_minutes"],
             "resolution": r["resolution_minutes"]}
        return {k: max(1, v // 2) for k, v in t.items()} if tier == GOLD else t
    if row is None:
        return default_targets(priority, tier)
    return {"first_response": row["first_response_minutes"], "next_response": row["next_response_minutes"],
            "resolution": row["resolution_minutes"]}


def load_calendar(session, name: str = "default") -> BusinessCalendar:
    cfg = session.execute(select(calendars.c.config).where(calendars.c.name == name)).scalar()
    return BusinessCalendar.from_config(cfg)


def start(session, cal: BusinessCalendar, ticket_id: int, target: str, minutes: int, at: datetime,
          cycle: int = 0, running: bool = True) -> dict:
    warn_at, due_at = cal.add(at, minutes * WARN_SHARE), cal.add(at, minutes)
    values = dict(ticket_id=ticket_id, target=target, cycle=cycle, minutes=minutes, started_at=at,
                  warn_at=warn_at, due_at=due_at, running=running, next_check_at=warn_at if running else None)
    if not running:  # filed while pending (not reachable today, kept for completeness)
        values.update(remaining_minutes=minutes, warn_remaining_minutes=minutes * WARN_SHARE)
    session.execute(ticket_slas.insert().values(**values))
    return values


def open_timers(session, ticket_id: int, target: str | None = None):
    q = select(ticket_slas).where(ticket_slas.c.ticket_id == ticket_id, ticket_slas.c.met_at.is_(None))
    if target:
        q = q.where(ticket_slas.c.target == target)
    return session.execute(q.order_by(ticket_slas.c.id)).mappings().all()


def meet(session, ticket_id: int, target: str, at: datetime) -> int:
    """Stop the ticket's open timers of this target; returns how many."""
    res = session.execute(ticket_slas.update().where(
        ticket_slas.c.ticket_id == ticket_id, ticket_slas.c.target == target, ticket_slas.c.met_at.is_(None))
        .values(met_at=at, running=False, next_check_at=None))
    return res.rowcount


def pause(session, cal: BusinessCalendar, ticket_id: int, at: datetime) -> None:
    for t in open_timers(session, ticket_id):
        if not t["running"]:
            continue
        remaining = max(0.0, cal.minutes_between(at, aware(t["due_at"])))
        warn_remaining = max(0.0, cal.minutes_between(at, aware(t["warn_at"])))
        session.execute(ticket_slas.update().where(ticket_slas.c.id == t["id"]).values(
            running=False, remaining_minutes=remaining, warn_remaining_minutes=warn_remaining, next_check_at=None))


def resume(session, cal: BusinessCalendar, ticket_id: int, at: datetime) -> None:
    for t in open_timers(session, ticket_id):
        if t["running"]:
            continue
        if t["remaining_minutes"] is None:
            continue
        due = aware(t["due_at"]) if t["breached_at"] is not None else cal.add(at, t["remaining_minutes"])
        warn = aware(t["warn_at"]) if t["warned_at"] is not None else cal.add(at, t["warn_remaining_minutes"])
        session.execute(ticket_slas.update().where(ticket_slas.c.id == t["id"]).values(
            running=True, due_at=due, warn_at=warn, remaining_minutes=None, warn_remaining_minutes=None,
            next_check_at=next_check(warn, due, t["warned_at"], t["breached_at"])))


def next_check(warn_at, due_at, warned_at, breached_at):
    if warned_at is None:
        return warn_at
    if breached_at is None:
        return due_at
    return None


def due_summary(session, ticket_id: int) -> dict:
    return due_summaries(session, [ticket_id]).get(ticket_id, {})


def due_summaries(session, ticket_ids: list[int]) -> dict:
    """The current (latest) timer of each target per ticket, for the tickets' representation."""
    out: dict = {i: {} for i in ticket_ids}
    if not ticket_ids:
        return out
    rows = session.execute(select(ticket_slas).where(ticket_slas.c.ticket_id.in_(ticket_ids))
                           .order_by(ticket_slas.c.ticket_id, ticket_slas.c.target, ticket_slas.c.cycle)).mappings().all()
    for r in rows:
        out[r["ticket_id"]][r["target"]] = {"cycle": r["cycle"], "target": r["target"], "minutes": r["minutes"], "due_at": aware(r["due_at"]),
                            "warn_at": aware(r["warn_at"]), "paused": r["met_at"] is None and not r["running"],
                            "remaining_minutes": r["remaining_minutes"], "met_at": aware(r["met_at"]),
                            "warned_at": aware(r["warned_at"]), "breached_at": aware(r["breached_at"]),
                            "escalated_at": aware(r["escalated_at"])}
    return out


def breached_filter(flag: bool):
    """Tickets with (or without) any breached timer, as a correlated EXISTS."""
    from ..models import tickets
    exists = select(ticket_slas.c.id).where(and_(ticket_slas.c.ticket_id == tickets.c.id,
                                                 ticket_slas.c.breached_at.is_not(None))).exists()
    return exists if flag else ~exists
