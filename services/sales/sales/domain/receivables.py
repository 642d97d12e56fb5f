"""Receivables: payments allocated to the oldest open installments, overdue alarms at 1, 7 and 30
days, and the aging report."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import models
from . import customers, money
from .contracts import PAYABLE, get, installments_of
from .errors import Conflict, Invalid

k, inst, pay, alloc = models.contracts, models.installments, models.payments, models.allocations
OVERDUE_LEVELS = (1, 7, 30)


def flag_overdue(uow, *, today: date, now) -> int:
    """payment.overdue for each open installment at 1, 7 and 30 days overdue, once per level (a run
    that finds an installment past several new levels at once reports the highest). 30 days
    overdue flags the customer's churn risk."""
    s = uow.session
    n = 0
    rows = s.execute(select(inst, k.c.customer_id, k.c.owner_id, k.c.currency).join(k, k.c.id == inst.c.contract_id)
                     .where(inst.c.paid < inst.c.amount, inst.c.due_date < today,
                            inst.c.overdue_level < OVERDUE_LEVELS[-1], k.c.status.in_(PAYABLE))).all()
    for r in rows:
        days = (today - r.due_date).days
        level = max((lv for lv in OVERDUE_LEVELS if days >= lv), default=0)
        if level <= r.overdue_level:
            continue
        res = s.execute(inst.update().where(inst.c.id == r.id, inst.c.overdue_level < level).values(overdue_level=level))
        if not res.rowcount:
            continue
        uow.emit("payment.overdue", {
            "installment_id": str(r.id), "contract_id": str(r.contract_id), "customer_id": str(r.customer_id),
            "owner_id": r.owner_id, "amount_due": Decimal(r.amount) - Decimal(r.paid), "currency": r.currency,
            "due_date": r.due_date, "days_overdue": days}, aggregate_type="contract", aggregate_id=r.contract_id)
        n += 1
        if level >= 30:
            customers.flag_churn_risk(uow, r.customer_id, f"installment {r.id} is {days} days overdue", now=now)
    return n


def record_payment(uow, contract_id: int, *, amount: Decimal, paid_on: date, reference: str, user, now) -> dict:
    """Allocate a payment to the oldest open installments. Overpayment: 422; a reference seen
    before: 409."""
    s = uow.session
    c = get(s, contract_id, lock=True)  # payments on one contract are serialised
    if c.status not in PAYABLE:
        raise Conflict(f"The contract is {c.status}; payments are taken once it is signed.")
    amount = money.exact(amount, c.currency, "amount")
    if amount <= 0:
        raise Invalid("amount", "The amount must be positive.")
    if s.execute(select(pay.c.id).where(pay.c.reference == reference)).first():
        raise Conflict(f"A payment with reference {reference!r} is already recorded.")
    open_rows = [r for r in installments_of(s, contract_id) if Decimal(r.paid) < Decimal(r.amount)]
    outstanding = sum((Decimal(r.amount) - Decimal(r.paid) for r in open_rows), Decimal(0))
    if amount > outstanding:
        raise Invalid("amount", f"The payment {amount} {c.currency} exceeds the outstanding {outstanding} {c.currency}.")
    try:
        with s.begin_nested():
            pid = s.execute(pay.insert().values(contract_id=contract_id, amount=amount, currency=c.currency,
                                                paid_on=paid_on, reference=reference, recorded_by=user.id,
                                                created_at=now)).inserted_primary_key[0]
    except IntegrityError:
        raise Conflict(f"A payment with reference {reference!r} is already recorded.")
    left, touched = amount, []
    for r in open_rows:
        if left <= 0:
            break
        share = min(left, Decimal(r.amount) - Decimal(r.paid))
        s.execute(inst.update().where(inst.c.id == r.id).values(paid=Decimal(r.paid) + share))
        s.execute(alloc.insert().values(payment_id=pid, installment_id=r.id, amount=share))
        touched.append({"installment_id": r.id, "amount": share})
        left -= share
    uow.emit("payment.received", {
        "payment_id": str(pid), "contract_id": str(c.id), "customer_id": str(c.customer_id), "owner_id": c.owner_id,
        "amount": amount, "currency": c.currency, "paid_on": paid_on,
        "installment_ids": [str(t["installment_id"]) for t in touched]}, aggregate_type="contract", aggregate_id=c.id)
    return {"id": pid, "contract_id": c.id, "amount": amount, "currency": c.currency, "paid_on": paid_on,
            "reference": reference, "allocations": touched}


def aging_bucket(days_overdue: int) -> str:
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "1_30"
    if days_overdue <= 60:
        return "31_60"
    if days_overdue <= 90:
        return "61_90"
    return "90_plus"


BUCKETS = ("current", "1_30", "31_60", "61_90", "90_plus")


def receivables_aging(session, *, today: date, where=None) -> dict:
    """Open installment amounts by customer, currency and bucket, plus totals in the base currency."""
    table = money.rates(session)
    q = (select(inst.c.due_date, inst.c.amount, inst.c.paid, k.c.currency, k.c.customer_id,
                models.customers.c.name)
         .join(k, k.c.id == inst.c.contract_id).join(models.customers, models.customers.c.id == k.c.customer_id)
         .where(inst.c.paid < inst.c.amount, k.c.status.in_(PAYABLE)))
    if where is not None:
        q = q.where(where)
    rows: dict[tuple, dict] = {}
    zero = {b: Decimal(0) for b in BUCKETS}
    total_base, unconverted = dict(zero), set()
    for r in session.execute(q).all():
        due = Decimal(r.amount) - Decimal(r.paid)
        bucket = aging_bucket((today - r.due_date).days)
        row = rows.setdefault((r.customer_id, r.currency), {"customer_id": r.customer_id, "name": r.name,
                                                            "currency": r.currency, **dict(zero)})
        row[bucket] += due
        base = money.to_base(due, r.currency, table)
        if base is None:
            unconverted.add(r.currency)
        else:
            total_base[bucket] += base
    out_rows = []
    for row in sorted(rows.values(), key=lambda x: (x["customer_id"], x["currency"])):
        row["total"] = sum((row[b] for b in BUCKETS), Decimal(0))
        out_rows.append(row)
    total_base["total"] = sum((total_base[b] for b in BUCKETS), Decimal(0))
    return {"as_of": today, "base_currency": money.BASE_CURRENCY, "customers": out_rows, "total": total_base,
            "unconverted_currencies": sorted(unconverted)}


def outstanding(session, contract_id: int) -> Decimal:
    return session.execute(select(func.coalesce(func.sum(inst.c.amount - inst.c.paid), 0))
                           .where(inst.c.contract_id == contract_id)).scalar_one()
