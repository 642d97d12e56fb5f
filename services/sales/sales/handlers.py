"""What the sales service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed, so a redelivered event has
no second effect; a second event about the same lead is caught by the unique lead_id."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from . import models
from .domain import customers, pipeline


def _now(uow):
    return uow.runtime.clock.now()


def lead_converted(uow, env, p):
    """One customer and one opportunity per lead. If the lead's person is already a customer
    (same phone, email, or company and city), the opportunity goes to that customer."""
    s = uow.session
    if s.execute(select(models.opportunities.c.id).where(models.opportunities.c.lead_id == p["lead_id"])).first():
        return  # this lead was converted before (a repeated event with another id)
    now = _now(uow)
    contact = p.get("contact") or {}
    # leads' `team_id` is its own row id; the team every other service (and the tokens) knows is
    # `team_code` (older events without it: the id, as before)
    team = p["team_code"] if "team_code" in p else p.get("team_id")
    data = {"name": p.get("company") or p.get("name") or contact.get("name") or f"Lead {p['lead_id']}",
            "company": p.get("company"), "phone": contact.get("phone"), "email": contact.get("email"),
            "owner_id": p["owner_id"], "team_id": team, "lead_id": p["lead_id"],
            "campaign_id": p.get("campaign_id"), "province": p.get("province"), "city": p.get("city"),
            "industry": p.get("industry"), "birthday": p.get("birthday"), "language": p.get("language"),
            "contacts": [contact] if contact else []}
    row = s.execute(select(models.customers).where(models.customers.c.lead_id == p["lead_id"])).first()
    if row is None:
        row, _ = customers.find_duplicate(s, data)
    if row is None:
        row = customers.create(uow, data, now=now, source="lead", check_duplicates=False)
    pipeline.create(s, customer_id=row.id, name=p["opportunity_name"], amount=p.get("expected_amount"),
                    currency=p.get("currency"), owner_id=p["owner_id"], team_id=team,
                    lead_id=p["lead_id"], now=now)


def csat_submitted(uow, env, p):
    """A score of 2 or less flags the customer's churn risk; customer.updated tells the owner."""
    if p["score"] > 2:
        return
    cid = _our_customer(uow, p["customer_id"])
    if cid is None:
        return  # not one of ours
    customers.flag_churn_risk(uow, cid, f"CSAT score {p['score']} on ticket {p['ticket_id']}", now=_now(uow))


def _our_customer(uow, customer_id: str) -> int | None:
    try:
        cid = int(customer_id)
    except ValueError:
        return None
    found = uow.session.execute(select(models.customers.c.id).where(models.customers.c.id == cid)).first()
    return cid if found else None


CLOSED = ("resolved", "closed")


def _occurred(env, fallback):
    try:
        at = datetime.fromisoformat(env.occurred_at)
    except (TypeError, ValueError):
        return fallback
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _aware(at):
    return at if at is None or at.tzinfo else at.replace(tzinfo=timezone.utc)


def ticket_event(uow, env, p):
    """Keep a read model of the customer's tickets (open ones, complaints) for the customer's health.
    Keyed by ticket id; the status comes from the newest event by `occurred_at` (the payload's
    `status`, or resolved/open by the event type), so a late `ticket.created` after the
    `ticket.resolved` changes nothing, and a reopened ticket (`ticket.assigned`) is open again."""
    cid = _our_customer(uow, p["customer_id"])
    if cid is None:
        return
    t = models.customer_tickets
    s, now = uow.session, _now(uow)
    at = _occurred(env, now)
    row = s.execute(select(t).where(t.c.ticket_id == p["ticket_id"]).with_for_update()).first()
    given = p.get("status")
    closed = given in CLOSED if given else env.type == "ticket.resolved"
    values = {"customer_id": cid, "type": p["type"], "priority": p["priority"],
              "status": "resolved" if closed else "open", "resolved_at": at if closed else None, "last_event_at": at}
    if row is None:
        s.execute(t.insert().values(ticket_id=p["ticket_id"], opened_at=at, **values))
    elif row.last_event_at is None or _aware(row.last_event_at) <= at:
        s.execute(t.update().where(t.c.ticket_id == p["ticket_id"]).values(**values))
    elif env.type == "ticket.created":  # older, but it knows when the ticket was opened
        s.execute(t.update().where(t.c.ticket_id == p["ticket_id"]).values(opened_at=at))


HANDLERS: dict = {
    "ticket.created": ticket_event,
    "ticket.assigned": ticket_event,
    "ticket.resolved": ticket_event,
    "lead.converted": lead_converted,
    "csat.submitted": csat_submitted,
}
