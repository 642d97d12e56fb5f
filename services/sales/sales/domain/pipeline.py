"""Opportunities and their stages."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from .. import models
from . import money, rollup
from .errors import Conflict, Invalid, NotFound

o = models.opportunities
STAGES = ("qualification", "needs_analysis", "proposal", "negotiation", "won", "lost")
OPEN_STAGES = STAGES[:4]
PROBABILITY = {"qualification": Decimal("0.10"), "needs_analysis": Decimal("0.25"), "proposal": Decimal("0.50"),
               "negotiation": Decimal("0.75"), "won": Decimal("1"), "lost": Decimal("0")}
INDEX = {s: i for i, s in enumerate(STAGES)}


def get(session, opp_id: int, lock: bool = False):
    q = select(o).where(o.c.id == opp_id)
    row = session.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"No opportunity {opp_id}.")
    return row


def create(session, *, customer_id: int, name: str, amount: Decimal | None, currency: str | None, owner_id: str,
           team_id: str | None, lead_id: str | None, now, expected_close=None) -> int:
    currency = money.check_currency(currency or money.BASE_CURRENCY)
    amount = money.q(amount if amount is not None else Decimal(0), currency)
    oid = session.execute(o.insert().values(
        customer_id=customer_id, lead_id=lead_id, name=name, expected_amount=amount, currency=currency,
        stage="qualification", furthest_stage=0, owner_id=owner_id, team_id=team_id, expected_close=expected_close,
        created_at=now, updated_at=now)).inserted_primary_key[0]
    rollup.apply(session, None, get(session, oid))  # the row as stored (SQLite keeps no time zone)
    return oid


def move(session, opp_id: int, changes: dict, *, now):
    """Change an opportunity: stage moves forward or back among the open stages, to won, or to lost
    (with a reason); a closed opportunity stays closed."""
    row = get(session, opp_id, lock=True)
    values = {}
    stage = changes.get("stage")
    if stage and stage != row.stage:
        if row.stage in ("won", "lost"):
            raise Conflict(f"The opportunity is {row.stage}; it cannot move.")
        if stage == "lost" and not (changes.get("lost_reason") or "").strip():
            raise Invalid("lost_reason", "A lost opportunity needs a reason.")
        values["stage"] = stage
        if stage != "lost":
            values["furthest_stage"] = max(row.furthest_stage, INDEX[stage])
    if "lost_reason" in changes:
        values["lost_reason"] = changes["lost_reason"]
    for k in ("name", "expected_close", "owner_id", "team_id"):
        if k in changes:
            values[k] = changes[k]
    if "currency" in changes or "expected_amount" in changes:
        cur = money.check_currency(changes.get("currency", row.currency))
        amt = changes.get("expected_amount", Decimal(row.expected_amount))
        values.update(currency=cur, expected_amount=money.exact(amt, cur, "expected_amount"))
    if not values:
        return row
    session.execute(o.update().where(o.c.id == opp_id).values(**values, updated_at=now))
    new = get(session, opp_id)
    rollup.apply(session, row, new)
    return new


def mark_won(session, opp_id: int | None, *, now) -> None:
    if opp_id is None:
        return
    row = session.execute(select(o).where(o.c.id == opp_id).with_for_update()).first()
    if row is not None and row.stage != "won":
        session.execute(o.update().where(o.c.id == opp_id).values(stage="won", furthest_stage=INDEX["won"],
                                                                   updated_at=now))
        rollup.apply(session, row, get(session, opp_id))
