"""What the leads service learns from sales and service-desk events."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update

from ..models import contracts, customers, lead_history, lead_keys, leads
from . import intake, load, normalise
from .actor import SYSTEM
from .records import event_fields, get, history, remember_user
from .util import insert_for


def _safe(fn, value):
    try:
        return fn(value)
    except normalise.Invalid:
        return None


def learn_customer(uow, p: dict, now) -> None:
    """customer.created / customer.updated: keep a read model and its dedupe keys."""
    s = uow.session
    current = s.execute(select(customers.c.revision).where(customers.c.customer_id == p["customer_id"])).first()
    if current is not None and p.get("revision") is not None and current.revision is not None \
            and p["revision"] < current.revision:
        return  # a stale update
    phone, email = _safe(normalise.phone, p.get("phone")), _safe(normalise.email, p.get("email"))
    values = dict(name=p["name"], owner_id=p.get("owner_id"), lead_id=int(p["lead_id"]) if (p.get("lead_id") or "").isdigit() else None,
                  phone=phone, email=email, company=p.get("company"), city=p.get("city"), revision=p.get("revision"),
                  updated_at=now)
    stmt = insert_for(s, customers).values(customer_id=p["customer_id"], **values)
    s.execute(stmt.on_conflict_do_update(index_elements=["customer_id"], set_=values))
    keys = normalise.keys(phone, email, p.get("company") or p.get("name"), p.get("city"))
    for kind, value in keys:
        stmt = insert_for(s, lead_keys).values(kind=kind, value=value, lead_id=None, customer_id=p["customer_id"])
        s.execute(stmt.on_conflict_do_update(index_elements=["kind", "value"], set_={"customer_id": p["customer_id"]}))
    if values["lead_id"] is not None:
        s.execute(update(leads).where(leads.c.id == values["lead_id"]).values(customer_id=p["customer_id"]))


def contract_signed(uow, p: dict, now) -> None:
    """Revenue attribution: the lead is won, the campaign earns the contract's amount."""
    s = uow.session
    lead = None
    if p.get("lead_id") and str(p["lead_id"]).isdigit():
        lead = get(s, int(p["lead_id"]))
    campaign_id = p.get("campaign_id")
    campaign_id = int(campaign_id) if campaign_id and str(campaign_id).isdigit() else (lead["campaign_id"] if lead else None)
    if lead is None and campaign_id is None:
        return
    stmt = insert_for(s, contracts).values(
        contract_id=p["contract_id"], lead_id=lead["id"] if lead else None, campaign_id=campaign_id,
        source=lead["source"] if lead else None, amount=Decimal(p["amount"]), currency=p["currency"],
        signed_on=p.get("signed_on"), recorded_at=now).on_conflict_do_nothing()
    if s.execute(stmt.returning(contracts.c.contract_id)).first() is None:
        return  # this contract was recorded before (the event again, under another id)
    if lead is not None:
        s.execute(update(leads).where(leads.c.id == lead["id"]).values(won_at=now, customer_id=p["customer_id"],
                                                                       updated_at=now))
        history(s, lead["id"], "won", now, SYSTEM, reason=f"contract {p['contract_id']} {p['amount']} {p['currency']}")


def customer_churned(uow, p: dict, now) -> None:
    """A win-back lead enters the pool, tagged `win_back`. The customer's own lead is reused when it
    exists (its keys are the customer's); otherwise a lead is made from the read model."""
    s = uow.session
    c = s.execute(select(customers).where(customers.c.customer_id == p["customer_id"])).mappings().first()
    lead_id = c["lead_id"] if c else None
    if lead_id is None:
        lead_id = s.execute(select(lead_keys.c.lead_id).where(lead_keys.c.customer_id == p["customer_id"],
                                                              lead_keys.c.lead_id.is_not(None))).scalar()
    row = get(s, lead_id) if lead_id is not None else None
    reason = f"win-back: customer {p['customer_id']} churned ({p['reason']})"
    if row is not None and s.execute(select(lead_history.c.id).where(
            lead_history.c.lead_id == row["id"], lead_history.c.kind == "win_back", lead_history.c.at >= now)).first():
        return  # this churn (or a later one) was acted on already: a late or repeated event changes nothing
    if row is not None:
        s.execute(update(leads).where(leads.c.id == row["id"]).values(
            status="pooled", stage="new", owner_id=None, owner_name=None, pooled_at=now, warned_for=None, locked=False,
            tags="win_back", cooldown_user_id=None, cooldown_until=None, converted_at=None, updated_at=now))
        load.moved(s, row["owner_id"], row["status"], None, "pooled")
        history(s, row["id"], "win_back", now, SYSTEM, from_owner=row["owner_id"], reason=reason)
        return
    data = {"name": (c["name"] if c else p.get("name")) or p["customer_id"], "company": c["company"] if c else p.get("name"),
            "phone": c["phone"] if c else None, "email": c["email"] if c else None, "city": c["city"] if c else None,
            "source": "other", "note": reason}
    if not data["phone"] and not data["email"]:
        data["phone"] = None
    norm = {**{f: None for f in intake.FIELDS}, **data}
    created = intake.create(uow, norm, SYSTEM, now, pooled=True, tags="win_back", claim_keys=False, prepared=True)
    lead_id = created.lead["id"]
    s.execute(update(lead_keys).where(lead_keys.c.customer_id == p["customer_id"], lead_keys.c.lead_id.is_(None))
              .values(lead_id=lead_id))


def referral_spotted(uow, p: dict, now) -> None:
    """A service agent spotted a cross-sell: a lead for the customer's account owner. It belongs to
    an existing customer, so it does not claim the contact keys (those are the customer's)."""
    data = {f: None for f in intake.FIELDS}
    data.update(name=p.get("customer_name"), source="referral", referrer_customer_id=p["customer_id"],
                note=f"{p['note']} (ticket {p['ticket_id']}, agent {p['agent_id']})")
    data["phone"] = _safe(normalise.phone, p.get("phone"))
    data["email"] = _safe(normalise.email, p.get("email"))
    owner = p.get("owner_id")
    if owner:
        remember_user(uow.session, owner, None)
        created = intake.create(uow, data, SYSTEM, now, owner=(owner, None), claim_keys=False, prepared=True)
        # the account owner is told of the new lead like of any lead given to them
        uow.emit("lead.assigned", {**event_fields(created.lead, uow.session), "previous_owner_id": None,
                                   "reason": "auto", "by_user_id": None},
                 aggregate_type="lead", aggregate_id=created.lead["id"])
    else:
        intake.create(uow, data, SYSTEM, now, claim_keys=False, prepared=True)
