"""Tickets: filing, routing, the lifecycle (new -> open -> pending -> resolved -> closed, reopen
within 7 days of resolution), comments and the first-response timer, reassignment."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import literal, select, update

from ..models import comments, tickets
from . import csat, customers, routing, sla
from .calendar import BusinessCalendar
from .common import QUEUE_OF_TYPE, DomainError, aware, record

REOPEN_WITHIN = timedelta(days=7)
AUTO_CLOSE_AFTER = timedelta(days=7)
LIVE = ("new", "open", "pending")


def _row(session, ticket_id: int, lock: bool = False):
    q = select(tickets).where(tickets.c.id == ticket_id)
    row = session.execute(q.with_for_update() if lock else q).mappings().first()
    if row is None:
        raise DomainError("not_found", f"No ticket {ticket_id}.")
    return row


def event_payload(session, t, **over) -> dict:
    owner = (customers.get(session, t["customer_id"]) or {}).get("owner_id")
    p = {"ticket_id": str(t["id"]), "customer_id": t["customer_id"], "type": t["type"], "priority": t["priority"],
         "queue": t["queue"], "subject": t["subject"], "assignee_id": t["assignee_id"], "owner_id": owner}
    p.update(over)
    return p


def auto_reply_text(cal: BusinessCalendar, starts: datetime, language: str | None) -> str:
    """In the customer's language: English for `en*`, else Chinese (the platform's default)."""
    local = starts.astimezone(cal.zone)
    if (language or "").lower().startswith("en"):
        return (f"We have received your request outside our working hours. Work on it starts on "
                f"{local:%Y-%m-%d} at {local:%H:%M} ({cal.tz}).")
    return f"您的请求已在非工作时间收到，我们将于 {local:%Y-%m-%d} {local:%H:%M}（{cal.tz}）开始处理。"


def create(uow, cal: BusinessCalendar, now: datetime, data: dict, created_by: str | None,
           order_id: str | None = None) -> int:
    """File a ticket, start its SLA timers and route it at once. Returns its id."""
    s = uow.session
    cust = customers.get(s, data["customer_id"]) or {}
    tier = cust.get("tier")
    queue = QUEUE_OF_TYPE[data["type"]]
    tid = s.execute(tickets.insert().values(
        customer_id=data["customer_id"], type=data["type"], priority=data["priority"], queue=queue, status="new",
        subject=data["subject"], description=data.get("description") or "", channel=data["channel"],
        contact=data.get("contact"), tier=tier, rank=routing.rank(data["priority"], tier), created_by=created_by,
        order_id=order_id, created_at=now, updated_at=now, held_seconds=0.0)).inserted_primary_key[0]
    targets = sla.targets_for(s, data["priority"], tier)
    sla.start(s, cal, tid, "first_response", targets["first_response"], now)
    sla.start(s, cal, tid, "resolution", targets["resolution"], now)
    record(s, tid, now, "created", created_by, queue=queue, channel=data["channel"])
    if not cal.is_open(now):
        text = auto_reply_text(cal, cal.next_open(now), cust.get("language"))
        s.execute(tickets.update().where(tickets.c.id == tid).values(auto_reply=text))
        s.execute(comments.insert().values(ticket_id=tid, author_id=None, body=text, public=True, from_customer=False,
                                           automatic=True, created_at=now))
        record(s, tid, now, "auto_reply", None)
    t = _row(s, tid)
    uow.emit("ticket.created", event_payload(s, t), aggregate_type="ticket", aggregate_id=tid)
    route(uow, t, now)
    return tid


def _assign(uow, t, agent_id: str, now: datetime, by: str | None, reason: str) -> bool:
    """Give a waiting ticket to an agent whose slot is already reserved."""
    s = uow.session
    res = s.execute(update(tickets).where(tickets.c.id == t["id"], tickets.c.status == "new",
                                          tickets.c.assignee_id.is_(None))
                    .values(assignee_id=agent_id, status="open", assigned_at=now, updated_at=now))
    if res.rowcount != 1:  # somebody else took it meanwhile
        routing.release_slot(s, agent_id, now)
        return False
    record(s, t["id"], now, "assigned", by, assignee_id=agent_id, reason=reason)
    uow.emit("ticket.assigned", event_payload(s, t, assignee_id=agent_id), aggregate_type="ticket",
             aggregate_id=t["id"])
    return True


def route(uow, t, now: datetime) -> str | None:
    """Assign a waiting ticket to the least-loaded free agent of its queue, if there is one."""
    agent = routing.pick_agent(uow.session, t["queue"], now)
    if agent is None:
        return None
    return agent if _assign(uow, t, agent, now, None, "auto") else None


def dispatch_waiting(uow, now: datetime, queues: list[str] | None = None, limit: int = 200) -> int:
    """Hand waiting tickets to agents who have room, best-ranked first. Returns how many."""
    s = uow.session
    full: set[str] = set()
    done = 0
    for tid, queue in routing.waiting(s, queues, limit):
        if queue in full:
            continue
        agent = routing.pick_agent(s, queue, now, skip_locked=True)
        if agent is None:
            full.add(queue)
            continue
        if _assign(uow, _row(s, tid), agent, now, None, "auto"):
            done += 1
    return done


def reassign(uow, ticket_id: int, to_user: str, by: str, now: datetime) -> None:
    s = uow.session
    t = _row(s, ticket_id, lock=True)
    if t["status"] not in LIVE:
        raise DomainError("conflict", f"A {t['status']} ticket cannot be reassigned.")
    if t["assignee_id"] == to_user:
        return
    if not routing.take_slot(s, to_user, now):
        raise DomainError("conflict", f"Agent {to_user} is unknown, inactive or at capacity.")
    old = t["assignee_id"]
    if old:
        routing.release_slot(s, old, now)
    s.execute(update(tickets).where(tickets.c.id == ticket_id).values(
        assignee_id=to_user, status="open" if t["status"] == "new" else t["status"], assigned_at=now, updated_at=now))
    record(s, ticket_id, now, "assigned", by, assignee_id=to_user, previous_assignee_id=old, reason="manual")
    uow.emit("ticket.assigned", event_payload(s, t, assignee_id=to_user), aggregate_type="ticket",
             aggregate_id=ticket_id)
    if old:
        dispatch_waiting(uow, now, routing.skills_of(s, old))


# -- lifecycle ---------------------------------------------------------------------------------------
def set_status(uow, cal: BusinessCalendar, ticket_id: int, target: str, actor: str | None, now: datetime,
               note: str | None = None) -> dict:
    """Move a ticket; illegal moves raise a conflict. Returns extra facts (the CSAT token when
    the move resolved the ticket)."""
    s = uow.session
    t = _row(s, ticket_id, lock=True)
    cur = t["status"]
    out: dict = {}
    if (cur, target) == ("open", "pending"):
        sla.pause(s, cal, ticket_id, now)
        s.execute(update(tickets).where(tickets.c.id == ticket_id).values(status="pending", pending_since=now,
                                                                          updated_at=now))
        record(s, ticket_id, now, "pending", actor, note=note)
    elif (cur, target) == ("pending", "open"):
        _resume(s, cal, t, now, actor, note)
    elif cur in ("open", "pending") and target == "resolved":
        if cur == "pending":
            _resume(s, cal, t, now, actor, None, quiet=True)
        sla.meet(s, ticket_id, "resolution", now)
        sla.meet(s, ticket_id, "next_response", now)
        s.execute(update(tickets).where(tickets.c.id == ticket_id).values(
            status="resolved", resolved_at=now, updated_at=now,
            # held_seconds as _resume left it (SQL: the value in the row, not the one read before)
            resolution_seconds=literal(resolution_elapsed(t["created_at"], now)) - tickets.c.held_seconds))
        record(s, ticket_id, now, "resolved", actor, note=note)
        token, expires = csat.create_request(s, ticket_id, t["customer_id"], now)
        uow.emit("ticket.resolved", event_payload(s, t, csat_token=token, csat_expires_at=expires.isoformat()),
                 aggregate_type="ticket", aggregate_id=ticket_id)
        if t["assignee_id"]:
            routing.release_slot(s, t["assignee_id"], now)
            dispatch_waiting(uow, now, routing.skills_of(s, t["assignee_id"]))
        out["csat_token"] = token
    elif cur == "resolved" and target == "closed":
        s.execute(update(tickets).where(tickets.c.id == ticket_id).values(status="closed", closed_at=now,
                                                                          updated_at=now))
        record(s, ticket_id, now, "closed", actor, note=note)
    elif cur in ("resolved", "closed") and target == "open":
        if now - aware(t["resolved_at"]) > REOPEN_WITHIN:
            raise DomainError("conflict", "A ticket can be reopened only within 7 days of its resolution.")
        agent = t["assignee_id"]
        status = "open"
        if not (agent and routing.take_slot(s, agent, now)):
            agent, status = None, "new"
        s.execute(update(tickets).where(tickets.c.id == ticket_id).values(
            status=status, assignee_id=agent, resolved_at=None, resolution_seconds=None, closed_at=None,
            updated_at=now))
        targets = sla.targets_for(s, t["priority"], t["tier"])
        cycle = _next_cycle(s, ticket_id, "resolution")
        sla.start(s, cal, ticket_id, "resolution", targets["resolution"], now, cycle=cycle)
        record(s, ticket_id, now, "reopened", actor, note=note)
        if status == "new":
            route(uow, _row(s, ticket_id), now)
    else:
        raise DomainError("conflict", f"A ticket cannot go from {cur} to {target}.")
    return out


def _resume(s, cal, t, now, actor, note, quiet=False):
    held = (now - aware(t["pending_since"])).total_seconds() if t["pending_since"] else 0.0
    sla.resume(s, cal, t["id"], now)
    s.execute(update(tickets).where(tickets.c.id == t["id"]).values(
        status="open", pending_since=None, held_seconds=tickets.c.held_seconds + held, updated_at=now))
    if not quiet:
        record(s, t["id"], now, "resumed", actor, note=note, held_seconds=held)


def _next_cycle(s, ticket_id: int, target: str) -> int:
    from sqlalchemy import func
    from ..models import ticket_slas
    cur = s.execute(select(func.max(ticket_slas.c.cycle)).where(ticket_slas.c.ticket_id == ticket_id,
                                                               ticket_slas.c.target == target)).scalar()
    return 0 if cur is None else cur + 1


def add_comment(uow, cal: BusinessCalendar, ticket_id: int, body: str, public: bool, from_customer: bool,
                actor: str | None, now: datetime) -> int:
    """A public reply by staff stops the first-response timer and answers the customer's latest
    message (next response); a customer's message starts a next-response timer and brings a
    pending ticket back to open."""
    s = uow.session
    t = _row(s, ticket_id, lock=True)
    if t["status"] == "closed":
        raise DomainError("conflict", "A closed ticket takes no comments; reopen it first.")
    cid = s.execute(comments.insert().values(ticket_id=ticket_id, author_id=actor, body=body, public=public or from_customer,
                                             from_customer=from_customer, automatic=False,
                                             created_at=now)).inserted_primary_key[0]
    if from_customer:
        record(s, ticket_id, now, "customer_message", actor, comment_id=cid)
        if t["status"] == "pending":
            _resume(s, cal, t, now, actor, "the customer answered")
        if t["status"] in LIVE and t["first_response_at"] is not None and not sla.open_timers(s, ticket_id, "next_response"):
            targets = sla.targets_for(s, t["priority"], t["tier"])
            sla.start(s, cal, ticket_id, "next_response", targets["next_response"], now,
                      cycle=_next_cycle(s, ticket_id, "next_response"))
    elif public:
        record(s, ticket_id, now, "public_reply", actor, comment_id=cid)
        if t["first_response_at"] is None:
            sla.meet(s, ticket_id, "first_response", now)
            s.execute(update(tickets).where(tickets.c.id == ticket_id).values(first_response_at=now, updated_at=now))
        sla.meet(s, ticket_id, "next_response", now)
    else:
        record(s, ticket_id, now, "internal_note", actor, comment_id=cid)
    s.execute(update(tickets).where(tickets.c.id == ticket_id).values(updated_at=now))
    return cid


def close_resolved(uow, now: datetime, limit: int = 1000) -> int:
    """Resolved tickets close themselves 7 days after resolution."""
    s = uow.session
    ids = list(s.execute(select(tickets.c.id).where(tickets.c.status == "resolved",
                                                    tickets.c.resolved_at <= now - AUTO_CLOSE_AFTER)
                         .order_by(tickets.c.id).limit(limit)).scalars())
    n = 0
    for tid in ids:
        res = s.execute(update(tickets).where(tickets.c.id == tid, tickets.c.status == "resolved")
                        .values(status="closed", closed_at=now, updated_at=now))
        if res.rowcount == 1:
            record(s, tid, now, "closed", None, reason="auto")
            n += 1
    return n


def get(session, ticket_id: int):
    return _row(session, ticket_id)


def list_comments(session, ticket_id: int) -> list[dict]:
    rows = session.execute(select(comments).where(comments.c.ticket_id == ticket_id)
                           .order_by(comments.c.created_at, comments.c.id)).mappings().all()
    return [{**dict(r), "created_at": aware(r["created_at"])} for r in rows]


def resolution_elapsed(created_at, resolved_at) -> float:
    """Seconds from filing to resolution (pending time not yet taken off)."""
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=timezone.utc)
    if resolved_at.tzinfo is None:
        resolved_at = resolved_at.replace(tzinfo=timezone.utc)
    return (resolved_at - created_at).total_seconds()
