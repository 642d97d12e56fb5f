"""The SLA scan: warning at 80% of a target, breach at 100%, and escalation of a breached ticket
to its queue's supervisor; each exactly once per ticket and timer. Every step is a conditional
update (`... WHERE warned_at IS NULL`), so two scans running at once, or a scan run again after a
crash, never emit twice. A timer first seen past its due time is breached without a late warning."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from ..models import customers, queues, ticket_history, ticket_slas, tickets
from .common import DomainError, aware, record, utc_now
from .tickets import event_payload


# re-checked by the conditional updates: a timer met or paused since the batch was read is left alone
STILL_RUNNING = (ticket_slas.c.met_at.is_(None), ticket_slas.c.running.is_(True))


def due_timers(session, now: datetime, limit: int):
    """Timers whose next check has come, with what their events need (one query per batch). On
    PostgreSQL the timers are locked, and ones another scan holds are skipped: two scans share the
    work instead of waiting on each other."""
    q = (select(ticket_slas.c.id, ticket_slas.c.ticket_id, ticket_slas.c.target, ticket_slas.c.warn_at,
                ticket_slas.c.due_at, ticket_slas.c.running, ticket_slas.c.met_at, ticket_slas.c.warned_at,
                tickets.c.customer_id, tickets.c.type, tickets.c.priority, tickets.c.queue, tickets.c.subject,
                tickets.c.assignee_id, customers.c.owner_id, queues.c.supervisor_id)
         .join(tickets, tickets.c.id == ticket_slas.c.ticket_id)
         .outerjoin(customers, customers.c.customer_id == tickets.c.customer_id)
         .outerjoin(queues, queues.c.name == tickets.c.queue)
         .where(ticket_slas.c.next_check_at <= now)
         .order_by(ticket_slas.c.next_check_at, ticket_slas.c.id).limit(limit)
         .with_for_update(of=ticket_slas, skip_locked=True))
    return session.execute(q).mappings().all()


def _payload(t, due: datetime) -> dict:
    return {"ticket_id": str(t["ticket_id"]), "customer_id": t["customer_id"], "type": t["type"],
            "priority": t["priority"], "queue": t["queue"], "subject": t["subject"], "assignee_id": t["assignee_id"],
            "owner_id": t["owner_id"], "target": t["target"], "due_at": due.isoformat(),
            "supervisor_id": t["supervisor_id"]}


def _claim(session, ids: list[int], guard, values: dict) -> set[int]:
    """Set `values` on those of the timers that still pass `guard`; the ids that did."""
    if not ids:
        return set()
    res = session.execute(update(ticket_slas).where(ticket_slas.c.id.in_(ids), guard, *STILL_RUNNING)
                          .values(**values).returning(ticket_slas.c.id))
    return set(res.scalars())


def check_batch(uow, rows, now: datetime) -> dict:
    """Emit what is due for a batch of `due_timers` rows; returns counts per event type."""
    s = uow.session
    counts = {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    idle = [r["id"] for r in rows if not r["running"] or r["met_at"] is not None]
    live = [r for r in rows if r["running"] and r["met_at"] is None]
    if idle:  # nothing to watch: out of the scan for good
        s.execute(update(ticket_slas).where(ticket_slas.c.id.in_(idle)).values(next_check_at=None))
    breach = [r for r in live if aware(r["due_at"]) <= now]
    warn = [r for r in live if aware(r["due_at"]) > now and aware(r["warn_at"]) <= now]
    breached = _claim(s, [r["id"] for r in breach], ticket_slas.c.breached_at.is_(None),
                      dict(breached_at=now, warned_at=func.coalesce(ticket_slas.c.warned_at, now), escalated_at=now,
                           next_check_at=None))
    warned = _claim(s, [r["id"] for r in warn], ticket_slas.c.warned_at.is_(None),
                    dict(warned_at=now, next_check_at=ticket_slas.c.due_at))
    history = []
    for t in breach:
        if t["id"] not in breached:
            continue
        due, sup = aware(t["due_at"]), t["supervisor_id"]
        base = _payload(t, due)
        uow.emit("ticket.sla_breached", base, aggregate_type="ticket", aggregate_id=t["ticket_id"])
        uow.emit("ticket.escalated", {**base, "escalated_to": sup}, aggregate_type="ticket",
                 aggregate_id=t["ticket_id"])
        s.execute(update(tickets).where(tickets.c.id == t["ticket_id"]).values(escalated_to=sup))
        history += [dict(ticket_id=t["ticket_id"], at=now, kind="sla_breached", actor_id=None,
                         data={"target": t["target"], "due_at": due.isoformat()}),
                    dict(ticket_id=t["ticket_id"], at=now, kind="escalated", actor_id=None,
                         data={"target": t["target"], "escalated_to": sup})]
        counts["ticket.sla_breached"] += 1
        counts["ticket.escalated"] += 1
    for t in warn:
        if t["id"] not in warned:
            continue
        due = aware(t["due_at"])
        uow.emit("ticket.sla_warning", _payload(t, due), aggregate_type="ticket", aggregate_id=t["ticket_id"])
        history.append(dict(ticket_id=t["ticket_id"], at=now, kind="sla_warning", actor_id=None,
                            data={"target": t["target"], "due_at": due.isoformat()}))
        counts["ticket.sla_warning"] += 1
    if history:
        s.execute(ticket_history.insert(), history)
    return counts


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
            seen.update(r["id"] for r in rows)
            for k, v in check_batch(uow, rows, now).items():
                counts[k] += v
            uow.commit()


# -- manual escalation --------------------------------------------------------------------------------
ESCALABLE = ("new", "open", "pending")


def _timer_for(session, ticket_id: int):
    """The SLA timer a manual escalation names (the event carries a target and its due time): the
    open timer due first, else the ticket's latest resolution timer."""
    rows = session.execute(select(ticket_slas).where(ticket_slas.c.ticket_id == ticket_id)
                           .order_by(ticket_slas.c.id)).mappings().all()
    live = sorted((r for r in rows if r["met_at"] is None and r["due_at"] is not None), key=lambda r: aware(r["due_at"]))
    if live:
        return live[0]
    resolution = [r for r in rows if r["target"] == "resolution" and r["due_at"] is not None]
    return resolution[-1] if resolution else None


def escalate(uow, ticket_id: int, actor: str | None, now: datetime, reason: str | None = None) -> str:
    """An agent or supervisor hands a live ticket to its queue's supervisor before any breach:
    `escalated_to` is set, a ticket event recorded and `ticket.escalated` emitted as the scan does.
    The update is conditional (`escalated_to IS NULL` and still live), so of two escalations at
    once exactly one succeeds and emits; the other, like any escalation of an escalated, resolved
    or closed ticket, is a conflict. Returns the supervisor."""
    s = uow.session
    t = s.execute(select(tickets.c.id, tickets.c.customer_id, tickets.c.type, tickets.c.priority, tickets.c.queue,
                         tickets.c.subject, tickets.c.assignee_id, tickets.c.status, tickets.c.escalated_to,
                         queues.c.supervisor_id)
                  .outerjoin(queues, queues.c.name == tickets.c.queue)
                  .where(tickets.c.id == ticket_id)).mappings().first()
    if t is None:
        raise DomainError("not_found", f"No ticket {ticket_id}.")
    if t["escalated_to"] is not None:
        raise DomainError("conflict", f"Ticket {ticket_id} is already escalated to {t['escalated_to']}.")
    if t["status"] not in ESCALABLE:
        raise DomainError("conflict", f"A {t['status']} ticket cannot be escalated.")
    sup = t["supervisor_id"]
    if sup is None:
        raise DomainError("conflict", f"The {t['queue']} queue has no supervisor to escalate to.")
    timer = _timer_for(s, ticket_id)
    if timer is None:  # every ticket starts its timers when filed: only a damaged record lacks them
        raise DomainError("conflict", f"Ticket {ticket_id} has no SLA timer to escalate on.")
    res = s.execute(update(tickets).where(tickets.c.id == ticket_id, tickets.c.escalated_to.is_(None),
                                          tickets.c.status.in_(ESCALABLE))
                    .values(escalated_to=sup, updated_at=now))
    if res.rowcount != 1:  # escalated (or moved on) by somebody else since it was read
        raise DomainError("conflict", f"Ticket {ticket_id} was escalated or closed meanwhile.")
    due = aware(timer["due_at"])
    payload = event_payload(s, t, target=timer["target"], due_at=due.isoformat(), supervisor_id=sup,
                            escalated_to=sup)
    uow.emit("ticket.escalated", payload, aggregate_type="ticket", aggregate_id=ticket_id)
    record(s, ticket_id, now, "escalated", actor, target=timer["target"], escalated_to=sup, reason=reason, manual=True)
    return sup
