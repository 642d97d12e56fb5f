"""The SLA scan: warning at 80% of a target, breach at 100%, and escalation of a breached ticket
to its queue's supervisor; each exactly once per ticket and timer. Every step is a conditional
update (`... WHERE warned_at IS NULL`), so two scans running at once, or a scan run again after a
crash, never emit twice. A timer first seen past its due time is breached without a late warning."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from ..models import customers, queues, ticket_slas, tickets
from .common import aware, record, utc_now


# re-checked by the conditional updates: a timer met or paused since the batch was read is left alone
STILL_RUNNING = (ticket_slas.c.met_at.is_(None), ticket_slas.c.running.is_(True))


def due_timers(session, now: datetime, limit: int):
    """Timers whose next check has come, with what their events need (one query per batch)."""
    q = (select(ticket_slas.c.id, ticket_slas.c.ticket_id, ticket_slas.c.target, ticket_slas.c.warn_at,
                ticket_slas.c.due_at, ticket_slas.c.running, ticket_slas.c.met_at, ticket_slas.c.warned_at,
                tickets.c.customer_id, tickets.c.type, tickets.c.priority, tickets.c.queue, tickets.c.subject,
                tickets.c.assignee_id, customers.c.owner_id, queues.c.supervisor_id)
         .join(tickets, tickets.c.id == ticket_slas.c.ticket_id)
         .outerjoin(customers, customers.c.customer_id == tickets.c.customer_id)
         .outerjoin(queues, queues.c.name == tickets.c.queue)
         .where(ticket_slas.c.next_check_at <= now)
         .order_by(ticket_slas.c.next_check_at, ticket_slas.c.id).limit(limit))
    return session.execute(q).mappings().all()


def check_timer(uow, t, now: datetime) -> list[str]:
    """Emit what is due for one timer (a row of `due_timers`); returns the event types emitted."""
    s = uow.session
    timer_id, ticket_id = t["id"], t["ticket_id"]
    if not t["running"] or t["met_at"] is not None:  # nothing to watch: out of the scan for good
        s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id).values(next_check_at=None))
        return []
    due, warn = aware(t["due_at"]), aware(t["warn_at"])
    emitted = []
    supervisor = t["supervisor_id"]
    base = {"ticket_id": str(ticket_id), "customer_id": t["customer_id"], "type": t["type"],
            "priority": t["priority"], "queue": t["queue"], "subject": t["subject"], "assignee_id": t["assignee_id"],
            "owner_id": t["owner_id"], "target": t["target"], "due_at": due.isoformat(), "supervisor_id": supervisor}
    if due <= now:
        res = s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id, ticket_slas.c.breached_at.is_(None),
                                                  *STILL_RUNNING)
                        .values(breached_at=now, warned_at=t["warned_at"] or now, escalated_at=now, next_check_at=None))
        if res.rowcount == 1:
            uow.emit("ticket.sla_breached", base, aggregate_type="ticket", aggregate_id=ticket_id)
            uow.emit("ticket.escalated", {**base, "escalated_to": supervisor}, aggregate_type="ticket",
                     aggregate_id=ticket_id)
            s.execute(update(tickets).where(tickets.c.id == ticket_id).values(escalated_to=supervisor))
            record(s, ticket_id, now, "sla_breached", None, target=t["target"], due_at=due.isoformat())
            record(s, ticket_id, now, "escalated", None, target=t["target"], escalated_to=supervisor)
            emitted += ["ticket.sla_breached", "ticket.escalated"]
    elif warn <= now:
        res = s.execute(update(ticket_slas).where(ticket_slas.c.id == timer_id, ticket_slas.c.warned_at.is_(None),
                                                  *STILL_RUNNING)
                        .values(warned_at=now, next_check_at=due))
        if res.rowcount == 1:
            uow.emit("ticket.sla_warning", base, aggregate_type="ticket", aggregate_id=ticket_id)
            record(s, ticket_id, now, "sla_warning", None, target=t["target"], due_at=due.isoformat())
            emitted.append("ticket.sla_warning")
    return emitted


def scan(runtime, batch: int = 500) -> dict:
    """Run the scan to the end, one transaction per batch. Reads the time from the runtime's clock."""
    now = utc_now(runtime.clock)
    counts = {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    seen: set[int] = set()
    while True:
        with runtime.uow() as uow:
            rows = [r for r in due_timers(uow.session, now, batch) if r["id"] not in seen]
            if not rows:
                return counts
            for r in rows:
                seen.add(r["id"])
                for e in check_timer(uow, r, now):
                    counts[e] += 1
            uow.commit()
