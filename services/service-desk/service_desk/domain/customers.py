"""The customer read model: built only from sales' events (`customer.*`, `contract.*`); the
service never reads the sales database."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from ..models import customer_contracts, customers, tickets
from .common import aware

FIELDS = ("name", "tier", "owner_id", "team_id", "language", "phone", "email", "company")


def apply_customer(session, payload: dict, now: datetime, created: bool) -> bool:
    """Upsert the customer from a `customer.created`/`customer.updated` payload. Stale updates
    (a `revision` not above the stored one) are ignored; an update that arrives before the
    creation creates the row, and the late creation then changes nothing it would roll back.
    Returns True when the row changed."""
    cid = payload["customer_id"]
    row = session.execute(select(customers).where(customers.c.customer_id == cid).with_for_update()).mappings().first()
    rev = payload.get("revision")
    values = {f: payload.get(f) for f in FIELDS if f in payload}
    if row is None:
        session.execute(customers.insert().values(customer_id=cid, revision=rev, created_seen=created, updated_at=now,
                                                  **values))
        return True
    stored = row["revision"]
    if created:
        # a creation that finds the row (an update came first, or the creation is repeated) is
        # older than what is there: it only fills in what is missing
        fill = {k: v for k, v in values.items() if row[k] is None and v is not None}
        session.execute(customers.update().where(customers.c.customer_id == cid).values(
            created_seen=True, revision=stored if stored is not None else rev, **fill))
        return bool(fill)
    if rev is not None and stored is not None and rev <= stored:
        return False
    session.execute(customers.update().where(customers.c.customer_id == cid).values(
        revision=rev if rev is not None else stored, updated_at=now,
        **values))
    return True


# A contract only moves forward: signed (active) -> expiring -> renewed (its successor took over)
# or terminated. An event older than the state held (a late `contract.signed` after the expiry
# warning, a repeated `contract.expiring` after the renewal) changes nothing of the status.
CONTRACT_STATUS = {"contract.signed": "active", "contract.expiring": "expiring", "contract.renewed": "renewed",
                   "contract.terminated": "terminated"}
CONTRACT_RANK = {"active": 0, "expiring": 1, "renewed": 2, "terminated": 3}


def apply_contract(session, event_type: str, payload: dict, now: datetime) -> None:
    cid = payload["contract_id"]
    status = CONTRACT_STATUS[event_type]
    row = session.execute(select(customer_contracts).where(customer_contracts.c.contract_id == cid)
                          .with_for_update()).mappings().first()
    values = {"customer_id": payload["customer_id"], "updated_at": now}
    for f in ("start_date", "end_date", "currency"):
        if payload.get(f) is not None:
            values[f] = payload[f]
    if payload.get("amount") is not None:
        values["amount"] = str(payload["amount"])
    if row is None:
        session.execute(customer_contracts.insert().values(contract_id=cid, status=status, **values))
        return
    if CONTRACT_RANK.get(row["status"], 0) > CONTRACT_RANK[status]:
        status = row["status"]  # an older event: the contract has moved on since
    session.execute(customer_contracts.update().where(customer_contracts.c.contract_id == cid)
                    .values(status=status, **values))


def get(session, customer_id: str) -> dict | None:
    row = session.execute(select(customers).where(customers.c.customer_id == customer_id)).mappings().first()
    return dict(row) if row else None


def context(session, customer_id: str, today: date, exclude_ticket: int | None = None) -> dict:
    """What an agent sees of the customer beside a ticket."""
    c = get(session, customer_id) or {}
    contracts = session.execute(
        select(customer_contracts).where(customer_contracts.c.customer_id == customer_id,
                                         customer_contracts.c.status != "terminated")
        .order_by(customer_contracts.c.end_date)).mappings().all()
    active = [{"contract_id": r["contract_id"], "status": r["status"], "start_date": r["start_date"],
               "end_date": r["end_date"], "amount": r["amount"], "currency": r["currency"]}
              for r in contracts if r["end_date"] is None or r["end_date"] >= today]
    q = (select(tickets.c.id, tickets.c.subject, tickets.c.type, tickets.c.status, tickets.c.created_at)
         .where(tickets.c.customer_id == customer_id).order_by(tickets.c.created_at.desc(), tickets.c.id.desc()).limit(20))
    past = [{"id": r.id, "subject": r.subject, "type": r.type, "status": r.status, "created_at": aware(r.created_at)}
            for r in session.execute(q) if r.id != exclude_ticket]
    return {"customer_id": customer_id, "known": bool(c), "name": c.get("name"), "tier": c.get("tier"),
            "owner_id": c.get("owner_id"), "team_id": c.get("team_id"), "language": c.get("language"),
            "phone": c.get("phone"), "email": c.get("email"), "company": c.get("company"),
            "active_contracts": active, "past_tickets": past}
