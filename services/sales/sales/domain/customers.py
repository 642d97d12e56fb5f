"""Customers: creation (from a converted lead or by hand) with dedupe, updates with a revision number
so read models can drop stale events, the churn-risk flag and the value tiers."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select

from .. import models
from . import money
from .errors import Conflict, NotFound

c = models.customers
TIERS = ("gold", "silver", "bronze", "prospect")
EDITABLE = ("name", "company", "phone", "email", "owner_id", "team_id", "province", "city", "industry",
            "birthday", "language", "churn_risk")


def phone_key(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits or None


def email_key(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def email_domain(email: str | None) -> str | None:
    key = email_key(email)
    return key.rsplit("@", 1)[1] or None if key and "@" in key else None


def company_key(company: str | None, city: str | None) -> str | None:
    if not company or not city:
        return None
    return f"{' '.join(company.lower().split())}|{' '.join(city.lower().split())}"


def keys(data: dict) -> dict:
    return {"phone_key": phone_key(data.get("phone")), "email_key": email_key(data.get("email")),
            "company_key": company_key(data.get("company"), data.get("city"))}


def find_duplicate(session, data: dict, exclude_id: int | None = None):
    """The existing customer with the same phone, email, or company in the same city."""
    k = keys(data)
    conds = [getattr(c.c, name) == value for name, value in k.items() if value]
    if not conds:
        return None, None
    q = select(c).where(or_(*conds))
    if exclude_id is not None:
        q = q.where(c.c.id != exclude_id)
    row = session.execute(q.order_by(c.c.id).limit(1)).first()
    if row is None:
        return None, None
    matched = next(name.removesuffix("_key") for name, value in k.items() if value and getattr(row, name) == value)
    return row, matched


def event_payload(row) -> dict:
    return {"customer_id": str(row.id), "name": row.name, "owner_id": row.owner_id, "team_id": row.team_id,
            "tier": row.tier, "lead_id": row.lead_id, "campaign_id": row.campaign_id, "phone": row.phone,
            "email": row.email, "company": row.company, "province": row.province, "city": row.city,
            "industry": row.industry, "birthday": row.birthday, "language": row.language,
            "churn_risk": row.churn_risk, "revision": row.revision}


def get(session, customer_id: int, lock: bool = False):
    q = select(c).where(c.c.id == customer_id)
    if lock:
        q = q.with_for_update()
    row = session.execute(q).first()
    if row is None:
        raise NotFound(f"No customer {customer_id}.")
    return row


def create(uow, data: dict, *, now, source: str, check_duplicates: bool = True):
    """Insert a customer and emit customer.created. Manual entry refuses duplicates (409)."""
    s = uow.session
    if check_duplicates:
        dup, matched = find_duplicate(s, data)
        if dup is not None:
            raise Conflict(f"A customer with the same {matched} exists.", duplicate_of=dup.id, matched_on=matched,
                           _owner=dup.owner_id, _team=dup.team_id)
    values = {k: data.get(k) for k in ("name", "company", "phone", "email", "owner_id", "team_id", "lead_id",
                                       "campaign_id", "province", "city", "industry", "birthday", "language")}
    values.update(keys(data), email_domain=email_domain(data.get("email")), source=source, tier="prospect",
                  churn_risk=False, revision=1, created_at=now,
                  updated_at=now)
    cid = s.execute(c.insert().values(**values)).inserted_primary_key[0]
    for contact in data.get("contacts") or []:
        if any(contact.get(k) for k in ("name", "phone", "email")):
            s.execute(models.contacts.insert().values(customer_id=cid, **{k: contact.get(k) for k in
                                                                           ("name", "phone", "email", "title")}))
    row = get(s, cid)
    uow.emit("customer.created", event_payload(row), aggregate_type="customer", aggregate_id=cid)
    return row


def update_fields(uow, customer_id: int, changes: dict, *, now):
    """Apply changes, bump the revision and emit customer.updated if anything changed."""
    s = uow.session
    row = get(s, customer_id, lock=True)
    changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
    if not changes:
        return row
    merged = {**row._asdict(), **changes}
    if {"phone", "email", "company", "city"} & changes.keys():
        dup, matched = find_duplicate(s, merged, exclude_id=customer_id)
        if dup is not None:
            raise Conflict(f"Another customer has the same {matched}.", matched_on=matched)
        changes.update(keys(merged), email_domain=email_domain(merged.get("email")))
    if changes.get("churn_risk") is False:
        changes["churn_reason"] = None
    s.execute(c.update().where(c.c.id == customer_id).values(**changes, revision=row.revision + 1, updated_at=now))
    row = get(s, customer_id)
    uow.emit("customer.updated", event_payload(row), aggregate_type="customer", aggregate_id=customer_id)
    return row


def flag_churn_risk(uow, customer_id: int, reason: str, *, now) -> bool:
    """Set the churn-risk flag (once); customer.updated tells the owner. False if it was already set."""
    row = get(uow.session, customer_id, lock=True)
    if row.churn_risk:
        return False
    update_fields(uow, customer_id, {"churn_risk": True}, now=now)
    uow.session.execute(c.update().where(c.c.id == customer_id).values(churn_reason=reason[:200]))
    return True


LIVE_CONTRACT = ("signed", "active", "expiring", "expired", "renewed", "terminated")


def tiers_from_revenue(revenue: dict[int, Decimal], gold_share: Decimal = Decimal("0.8"),
                       silver_share: Decimal = Decimal("0.95")) -> dict[int, str]:
    """Pareto: the customers making up the first `gold_share` of revenue are gold, up to
    `silver_share` silver, the rest with revenue bronze; no revenue is a prospect."""
    total = sum(revenue.values(), Decimal(0))
    result, running = {}, Decimal(0)
    for cid, amount in sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0])):
        if amount <= 0 or total <= 0:
            result[cid] = "prospect"
            continue
        before = running / total
        running += amount
        result[cid] = "gold" if before < gold_share else "silver" if before < silver_share else "bronze"
    return result


def tier_shares(settings) -> tuple[Decimal, Decimal]:
    """The Pareto cut-offs: Settings.extra (tier_gold_share, tier_silver_share) or the environment
    (SALES_TIER_GOLD_SHARE, SALES_TIER_SILVER_SHARE); 0.8 and 0.95 by default."""
    import os
    extra = getattr(settings, "extra", None) or {}
    gold = Decimal(str(extra.get("tier_gold_share") or os.environ.get("SALES_TIER_GOLD_SHARE", "0.8")))
    silver = Decimal(str(extra.get("tier_silver_share") or os.environ.get("SALES_TIER_SILVER_SHARE", "0.95")))
    if not (0 < gold <= silver <= 1):
        raise ValueError("tier shares must satisfy 0 < gold <= silver <= 1")
    return gold, silver


def recompute_tiers(uow, *, now, gold_share=None, silver_share=None) -> int:
    """Recompute every customer's tier from contracted revenue (base currency) over the last 12
    months; emit customer.updated for each change. Returns how many changed."""
    if gold_share is None or silver_share is None:
        gold_share, silver_share = tier_shares(uow.runtime.settings)
    s = uow.session
    k = models.contracts
    since = (now - timedelta(days=365)).date()
    table = money.rates(s)
    revenue: dict[int, Decimal] = {cid: Decimal(0) for cid in s.execute(select(c.c.id)).scalars()}
    for cid, amount, currency in s.execute(select(k.c.customer_id, k.c.amount, k.c.currency).where(
            k.c.status.in_(LIVE_CONTRACT), k.c.signed_on >= since)):
        base = money.to_base(Decimal(amount), currency, table)
        if base is not None:
            revenue[cid] = revenue.get(cid, Decimal(0)) + base
    new = tiers_from_revenue(revenue, Decimal(gold_share), Decimal(silver_share))
    current = dict(s.execute(select(c.c.id, c.c.tier)).all())
    changed = 0
    for cid, tier in new.items():
        if current.get(cid) != tier:
            update_fields(uow, cid, {"tier": tier}, now=now)
            changed += 1
    return changed


def count(session) -> int:
    return session.execute(select(func.count()).select_from(c)).scalar_one()
