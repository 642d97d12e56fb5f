"""What the sales service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed, so a redelivered event has
no second effect; a second event about the same lead is caught by the unique lead_id."""
from __future__ import annotations

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
    data = {"name": p.get("company") or p.get("name") or contact.get("name") or f"Lead {p['lead_id']}",
            "company": p.get("company"), "phone": contact.get("phone"), "email": contact.get("email"),
            "owner_id": p["owner_id"], "team_id": p.get("team_id"), "lead_id": p["lead_id"],
            "campaign_id": p.get("campaign_id"), "province": p.get("province"), "city": p.get("city"),
            "industry": p.get("industry"), "birthday": p.get("birthday"), "language": p.get("language"),
            "contacts": [contact] if contact else []}
    row = s.execute(select(models.customers).where(models.customers.c.lead_id == p["lead_id"])).first()
    if row is None:
        row, _ = customers.find_duplicate(s, data)
    if row is None:
        row = customers.create(uow, data, now=now, source="lead", check_duplicates=False)
    pipeline.create(s, customer_id=row.id, name=p["opportunity_name"], amount=p.get("expected_amount"),
                    currency=p.get("currency"), owner_id=p["owner_id"], team_id=p.get("team_id"),
                    lead_id=p["lead_id"], now=now)


def csat_submitted(uow, env, p):
    """A score of 2 or less flags the customer's churn risk; customer.updated tells the owner."""
    if p["score"] > 2:
        return
    try:
        cid = int(p["customer_id"])
    except ValueError:
        return  # not one of ours
    if uow.session.execute(select(models.customers.c.id).where(models.customers.c.id == cid)).first() is None:
        return
    customers.flag_churn_risk(uow, cid, f"CSAT score {p['score']} on ticket {p['ticket_id']}", now=_now(uow))


HANDLERS: dict = {
    "lead.converted": lead_converted,
    "csat.submitted": csat_submitted,
}
