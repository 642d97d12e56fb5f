"""Products and quotes: line totals computed here, in Decimal, rounded half-up per line."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from .. import models
from . import money
from .errors import Conflict, Invalid, NotFound

qt, ql, pr = models.quotes, models.quote_lines, models.products
EDITABLE_STATUSES = ("draft", "returned", "withdrawn")
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal
    gross: Decimal
    discount: Decimal
    net: Decimal


def price_line(sku: str, name: str, quantity: Decimal, unit_price: Decimal, discount_pct: Decimal,
               currency: str) -> Line:
    for value in (quantity, unit_price, discount_pct):
        if not isinstance(value, Decimal):
            raise TypeError("quote arithmetic takes Decimal only")
    gross = money.q(quantity * unit_price, currency)
    discount = money.q(gross * discount_pct / HUNDRED, currency)
    return Line(sku, name, quantity, unit_price, discount_pct, gross, discount, gross - discount)


def totals(lines: list[Line]) -> dict:
    zero = Decimal(0)
    return {"subtotal": sum((l.gross for l in lines), zero), "discount_amount": sum((l.discount for l in lines), zero),
            "total": sum((l.net for l in lines), zero),
            "max_discount_pct": max((l.discount_pct for l in lines), default=zero)}


def build_lines(session, currency: str, lines: list[dict]) -> list[Line]:
    out = []
    for i, line in enumerate(lines):
        product = session.execute(select(pr).where(pr.c.sku == line["sku"])).first()
        if product is None or not product.active:
            raise Invalid("lines", f"Line {i + 1}: no active product with SKU {line['sku']!r}.")
        price = line.get("unit_price")
        if price is None:
            if product.currency != currency:
                raise Invalid("lines", f"Line {i + 1}: {line['sku']} is priced in {product.currency}; "
                                       f"give a unit_price in {currency}.")
            price = Decimal(product.list_price)
        price = money.exact(price, currency, "lines")
        out.append(price_line(product.sku, product.name, line["quantity"], price, line.get("discount_pct", Decimal(0)),
                              currency))
    return out


def get(session, quote_id: int, lock: bool = False):
    q = select(qt).where(qt.c.id == quote_id)
    row = session.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"No quote {quote_id}.")
    return row


def lines_of(session, quote_id: int):
    return session.execute(select(ql).where(ql.c.quote_id == quote_id).order_by(ql.c.seq)).all()


def _write_lines(session, quote_id: int, lines: list[Line]) -> dict:
    session.execute(ql.delete().where(ql.c.quote_id == quote_id))
    for seq, l in enumerate(lines, 1):
        session.execute(ql.insert().values(quote_id=quote_id, seq=seq, sku=l.sku, name=l.name, quantity=l.quantity,
                                           unit_price=l.unit_price, discount_pct=l.discount_pct, gross=l.gross,
                                           discount=l.discount, net=l.net))
    return totals(lines)


def create(session, *, opportunity, currency: str, lines: list[dict], owner_id: str, team_id: str | None, now,
           revision: int = 1, previous_id: int | None = None) -> int:
    currency = money.check_currency(currency)
    priced = build_lines(session, currency, lines)
    t = totals(priced)
    qid = session.execute(qt.insert().values(
        opportunity_id=opportunity.id, customer_id=opportunity.customer_id, owner_id=owner_id, team_id=team_id,
        currency=currency, status="draft", revision=revision, previous_id=previous_id, created_at=now, updated_at=now,
        **t)).inserted_primary_key[0]
    _write_lines(session, qid, priced)
    return qid


def edit(session, quote_id: int, *, currency: str | None, lines: list[dict] | None, now):
    row = get(session, quote_id, lock=True)
    if row.status not in EDITABLE_STATUSES:
        raise Conflict(f"The quote is {row.status}: it is locked; create a new revision to change it.")
    currency = money.check_currency(currency or row.currency)
    if lines is None:
        lines = [{"sku": l.sku, "quantity": Decimal(l.quantity), "discount_pct": Decimal(l.discount_pct),
                  "unit_price": Decimal(l.unit_price)} for l in lines_of(session, quote_id)]
    t = _write_lines(session, quote_id, build_lines(session, currency, lines))
    session.execute(qt.update().where(qt.c.id == quote_id).values(currency=currency, updated_at=now, **t))
    return get(session, quote_id)


def revise(session, quote_id: int, *, owner_id: str, team_id: str | None, now) -> int:
    """A new draft revision of a locked quote (approved, rejected, pending): it must be approved again."""
    row = get(session, quote_id)
    lines = [{"sku": l.sku, "quantity": Decimal(l.quantity), "discount_pct": Decimal(l.discount_pct),
              "unit_price": Decimal(l.unit_price)} for l in lines_of(session, quote_id)]
    opp = select(models.opportunities).where(models.opportunities.c.id == row.opportunity_id)
    return create(session, opportunity=session.execute(opp).first(), currency=row.currency, lines=lines,
                  owner_id=row.owner_id, team_id=row.team_id, now=now, revision=row.revision + 1,
                  previous_id=row.id)


def set_status(session, quote_id: int, status: str, *, now, expect: tuple[str, ...]) -> bool:
    """Conditional status change: False if the quote was not in one of `expect`."""
    res = session.execute(qt.update().where(qt.c.id == quote_id, qt.c.status.in_(expect))
                          .values(status=status, updated_at=now))
    return res.rowcount == 1
