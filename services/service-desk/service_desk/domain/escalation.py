"""The SLA scan: warning at 80% of a target, breach at 100%, and escalation of a breached ticket
to its queue's supervisor; each exactly once per ticket and timer. Every step is a conditional
update (`... WHERE warned_at IS NULL`), so two scans running at once, or a scan run again after a
crash, never emit twice. A timer first seen past its due time is breached without a late warning."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from ..models import queues, ticket_slas, tickets
from . import tickets as ticket_rules
from .common import aware, record, utc_now


def due_timers(session, now: datetime, limit: int):
    q = (select(ticket_slas.c.id).where(ticket_slas.c.next_check_at <= now)
         .order_by(ticket_slas.c.next_check_at, ticket_slas.c.id).limit(limit))
    return list(session.execute(q).scalars())


def check_timer(uow, timer_id: int, now: datetime) -> list[str]:
    """Emit what is due for one timer; returns the event types emitted."""
    s = uow.session
    t = s.execute(select(ticket_slas).where(ticket_slas.c.id == timer_id)).mappings().first()
    if t is None:
        return []
    if not t["running"] or t["met_at"] is not None:  # nothing to watch: out of the scan for good
        s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id).values(next_check_at=None))
        return []
    ticket = s.execute(select(tickets).where(tickets.c.id == t["ticket_id"])).mappings().first()
    due, warn = aware(t["due_at"]), aware(t["warn_at"])
    emitted = []
    supervisor = s.execute(select(queues.c.supervisor_id).where(queues.c.name == ticket["queue"])).scalar()
    base = ticket_rules.event_payload(s, ticket, target=t["target"], due_at=due.isoformat(), supervisor_id=supervisor)
    if due <= now:
        res = s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id, ticket_slas.c.breached_at.is_(None))
                        .values(breached_at=now, warned_at=t["warned_at"] or now, escalated_at=now, next_check_at=None))
        if res.rowcount == 1:
            uow.emit("ticket.sla_breached", base, aggregate_type="ticket", aggregate_id=ticket["id"])
            uow.emit("ticket.escalated", {**base, "escalated_to": supervisor}, aggregate_type="ticket",
                     aggregate_id=ticket["id"])
            s.execute(update(tickets).where(tickets.c.id == ticket["id"]).values(escalated_to=supervisor))
            record(s, ticket["id"], now, "sla_breached", None, target=t["target"], due_at=due.isoformat())
            record(s, ticket["id"], now, "escalated", None, target=t["target"], escalated_to=supervisor)
            emitted += ["ticket.sla_breached", "ticket.escalated"]
    elif warn <= now:
        res = s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id, ticket_slas.c.warned_at.is_(None))
                        .values(warned_at=now, next_check_at=due))
        if res.rowcount == 1:
            uow.emit("ticket.sla_warning", base, aggregate_type="ticket", aggregate_id=ticket["id"])
            record(s, ticket["id"], now, "sla_warning", None, target=t["target"], due_at=due.isoformat())
            emitted.append("ticket.sla_warning")
    return emitted


def scan(runtime, batch: int = 500) -> dict:
    """Run the scan to the end, one transaction per batch. Reads the time from the runtime's clock."""
    now = utc_now(runtime.clock)
    counts = {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    seen: set[int] = set()
    while True:
        with runtime.uow() as uow:
            ids = [i for i in due_timers(uow.session, now, batch) if i not in seen]
            if not ids:
                return counts
            for i in ids:
                seen.add(i)
                for e in check_timer(uow, i, now):
                    counts[e] += 1
            uow.commit()
