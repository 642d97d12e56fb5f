"""Contracts (draft → pending_approval/approved → signed → active → expiring → expired / renewed /
terminated) with their payment plans; signing opens an order, renewal makes the successor."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from .. import models
from . import approvals, customers, money, orders, pipeline, quotes
from .errors import Conflict, Invalid, NotFound

k, inst = models.contracts, models.installments
LIVE = ("signed", "active", "expiring")
PAYABLE = ("signed", "active", "expiring", "expired", "renewed", "terminated")
RENEWAL_WINDOW_DAYS = 30


def get(session, contract_id: int, lock: bool = False):
    q = select(k).where(k.c.id == contract_id)
    row = session.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"No contract {contract_id}.")
    return row


def installments_of(session, contract_id: int):
    return session.execute(select(inst).where(inst.c.contract_id == contract_id).order_by(inst.c.due_date, inst.c.seq)).all()


def _check_plan(plan: list[dict], total: Decimal, currency: str, start: date, end: date) -> list[dict]:
    if end <= start:
        raise Invalid("end_date", "The end date must be after the start date.")
    if not plan:
        raise Invalid("payment_plan", "A contract needs at least one installment.")
    out = []
    for i, p in enumerate(plan):
        amount = money.exact(p["amount"], currency, "payment_plan")
        if amount <= 0:
            raise Invalid("payment_plan", f"Installment {i + 1}: the amount must be positive.")
        out.append({"due_date": p["due_date"], "amount": amount})
    s = sum((p["amount"] for p in out), Decimal(0))
    if s != total:
        raise Invalid("payment_plan", f"The installments add up to {s} {currency}, not the contract total "
                                      f"{total} {currency}.")
    return out


def create(session, *, quote, start_date: date, end_date: date, payment_plan: list[dict], now,
           predecessor_id: int | None = None) -> int:
    if quote.status != "approved":
        raise Conflict(f"The quote is {quote.status}; a contract needs an approved quote.")
    total = money.q(Decimal(quote.total), quote.currency)
    plan = _check_plan(payment_plan, total, quote.currency, start_date, end_date)
    cust = customers.get(session, quote.customer_id)
    opp = session.execute(select(models.opportunities).where(models.opportunities.c.id == quote.opportunity_id)).first()
    cid = session.execute(k.insert().values(
        quote_id=quote.id, customer_id=quote.customer_id, opportunity_id=quote.opportunity_id,
        owner_id=quote.owner_id, team_id=quote.team_id, lead_id=opp.lead_id if opp else cust.lead_id,
        campaign_id=cust.campaign_id, amount=total, currency=quote.currency, status="draft", start_date=start_date,
        end_date=end_date, predecessor_id=predecessor_id, renewal_window_days=RENEWAL_WINDOW_DAYS,
        expiring_notified=False, churn_checked=False, created_at=now, updated_at=now)).inserted_primary_key[0]
    for seq, p in enumerate(plan, 1):
        session.execute(inst.insert().values(contract_id=cid, seq=seq, due_date=p["due_date"], amount=p["amount"],
                                             paid=Decimal(0), overdue_level=0))
    return cid


def submit(uow, contract_id: int, user, *, now) -> str:
    """Start the approval per policy (by amount in the base currency) or approve at once."""
    s = uow.session
    c = get(s, contract_id, lock=True)
    if c.status != "draft":
        raise Conflict(f"The contract is {c.status}; only a draft can be submitted.")
    base = money.to_base(Decimal(c.amount), c.currency, money.rates(s))
    if base is None:
        raise Invalid("currency", f"No exchange rate for {c.currency}: set one with PUT /v1/exchange-rates.")
    s.execute(k.update().where(k.c.id == contract_id).values(status="pending_approval", updated_at=now))
    aid = approvals.start(uow, subject_type="contract", subject_id=contract_id, requester_id=user.id,
                          requester_team=user.team or c.team_id, value=base, amount=Decimal(c.amount),
                          currency=c.currency, max_discount_pct=None, now=now)
    if aid is None:
        s.execute(k.update().where(k.c.id == contract_id).values(status="approved", updated_at=now))
        return "approved"
    return "pending_approval"


def products_of(session, quote_id: int) -> list[dict]:
    return [{"sku": l.sku, "name": l.name, "quantity": money.plain(l.quantity)} for l in quotes.lines_of(session, quote_id)]


def contract_event(c, **extra) -> dict:
    return {"contract_id": str(c.id), "customer_id": str(c.customer_id), "owner_id": c.owner_id, "lead_id": c.lead_id,
            "campaign_id": c.campaign_id, "amount": Decimal(c.amount), "currency": c.currency,
            "start_date": c.start_date, "end_date": c.end_date, **extra}


def sign(uow, contract_id: int, signed_on: date, *, now) -> int:
    """Sign an approved contract: contract.signed, an order for back office, the opportunity won, the
    predecessor (on a renewal) renewed, tiers recomputed. Returns the order id."""
    s = uow.session
    c = get(s, contract_id, lock=True)
    res = s.execute(k.update().where(k.c.id == contract_id, k.c.status == "approved").values(
        status="active" if c.start_date <= now.date() else "signed", signed_on=signed_on, updated_at=now))
    if res.rowcount != 1:
        raise Conflict(f"The contract is {c.status}; only an approved contract can be signed.")
    c = get(s, contract_id)
    products = products_of(s, c.quote_id)
    uow.emit("contract.signed", contract_event(c, signed_on=signed_on, products=products),
             aggregate_type="contract", aggregate_id=c.id)
    oid = s.execute(orders.od.insert().values(contract_id=c.id, customer_id=c.customer_id, owner_id=c.owner_id,
                                       team_id=c.team_id, status="submitted",
                                       products=[{**p, "quantity": str(p["quantity"])} for p in products],
                                       created_at=now, updated_at=now)).inserted_primary_key[0]
    uow.emit("order.submitted", orders.order_event(orders.get(s, oid)), aggregate_type="order", aggregate_id=oid)
    pipeline.mark_won(s, c.opportunity_id, now=now)
    if c.predecessor_id:
        old = get(s, c.predecessor_id, lock=True)
        if old.status in ("active", "expiring", "expired", "signed"):
            s.execute(k.update().where(k.c.id == old.id).values(status="renewed", updated_at=now))
            uow.emit("contract.renewed", contract_event(old, successor_id=str(c.id)), aggregate_type="contract",
                     aggregate_id=old.id)
    customers.recompute_tiers(uow, now=now)
    return oid


def renew(uow, contract_id: int, *, now, start_date: date | None = None, end_date: date | None = None) -> int:
    """The successor contract, a draft copied from the old one (same quote, amount and products, the
    payment plan moved to the new period); it goes through approval and signing again."""
    s = uow.session
    old = get(s, contract_id, lock=True)
    if old.status not in ("active", "expiring", "expired", "signed"):
        raise Conflict(f"A {old.status} contract cannot be renewed.")
    if old.successor_id:
        raise Conflict(f"This contract already has a successor ({old.successor_id}).", successor_id=old.successor_id)
    length = old.end_date - old.start_date
    start = start_date or old.end_date + timedelta(days=1)
    end = end_date or start + length
    shift = start - old.start_date
    plan = [{"due_date": i.due_date + shift, "amount": Decimal(i.amount)} for i in installments_of(s, old.id)]
    quote = quotes.get(s, old.quote_id)
    try:
        with s.begin_nested():
            new_id = create(s, quote=quote, start_date=start, end_date=end, payment_plan=plan, now=now,
                            predecessor_id=old.id)
    except IntegrityError:
        raise Conflict("This contract was renewed at the same moment by someone else.")
    s.execute(k.update().where(k.c.id == old.id).values(successor_id=new_id, updated_at=now))
    return new_id


def terminate(uow, contract_id: int, reason: str, *, now) -> None:
    s = uow.session
    c = get(s, contract_id, lock=True)
    res = s.execute(k.update().where(k.c.id == contract_id, k.c.status.in_(LIVE)).values(
        status="terminated", reason=reason, updated_at=now))
    if res.rowcount != 1:
        raise Conflict(f"A {c.status} contract cannot be terminated.")
    uow.emit("contract.terminated", contract_event(c, reason=reason), aggregate_type="contract", aggregate_id=c.id)


# -- scheduled ------------------------------------------------------------------------------------

def activate_started(uow, *, today: date, now) -> int:
    res = uow.session.execute(k.update().where(k.c.status == "signed", k.c.start_date <= today)
                              .values(status="active", updated_at=now))
    return res.rowcount


def mark_expiring(uow, *, today: date, now) -> int:
    """contract.expiring once, when an active contract enters its renewal window."""
    s = uow.session
    n = 0
    for c in s.execute(select(k).where(k.c.status == "active", k.c.expiring_notified.is_(False))).all():
        if c.end_date - timedelta(days=c.renewal_window_days) <= today <= c.end_date:
            res = s.execute(k.update().where(k.c.id == c.id, k.c.expiring_notified.is_(False)).values(
                status="expiring", expiring_notified=True, updated_at=now))
            if res.rowcount:
                uow.emit("contract.expiring", contract_event(c), aggregate_type="contract", aggregate_id=c.id)
                n += 1
    return n


def expire(uow, *, today: date, now) -> dict:
    """Contracts past their end date expire; a customer left with no renewal and no other live
    contract has churned (customer.churned once, and the churn-risk flag)."""
    s = uow.session
    counts = {"expired": 0, "churned": 0}
    for c in s.execute(select(k).where(k.c.status.in_(("active", "expiring", "signed")), k.c.end_date < today)).all():
        res = s.execute(k.update().where(k.c.id == c.id, k.c.status == c.status).values(status="expired",
                                                                                        updated_at=now))
        counts["expired"] += res.rowcount
    for c in s.execute(select(k).where(k.c.status == "expired", k.c.churn_checked.is_(False))).all():
        s.execute(k.update().where(k.c.id == c.id).values(churn_checked=True))
        renewed = c.successor_id is not None and s.execute(select(k.c.status).where(k.c.id == c.successor_id)
                                                           ).scalar() in LIVE + ("approved", "expired", "renewed")
        other = s.execute(select(exists().where(k.c.customer_id == c.customer_id, k.c.id != c.id,
                                                k.c.status.in_(LIVE)))).scalar()
        if renewed or other:
            continue
        cust = customers.get(s, c.customer_id)
        uow.emit("customer.churned", {"customer_id": str(cust.id), "owner_id": cust.owner_id, "name": cust.name,
                                      "reason": f"contract {c.id} expired on {c.end_date} without renewal"},
                 aggregate_type="customer", aggregate_id=cust.id)
        customers.flag_churn_risk(uow, cust.id, f"contract {c.id} expired unrenewed", now=now)
        counts["churned"] += 1
    return counts
