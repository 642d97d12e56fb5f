"""The back-office queue: orders opened by signed contracts, started, fulfilled or rejected by ops."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from .. import models
from .errors import Conflict, NotFound

od = models.orders


def get(session, order_id: int, lock: bool = False):
    q = select(od).where(od.c.id == order_id)
    row = session.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"No order {order_id}.")
    return row


def order_event(o) -> dict:
    return {"order_id": str(o.id), "contract_id": str(o.contract_id), "customer_id": str(o.customer_id),
            "owner_id": o.owner_id, "note": o.note,
            "products": [{"sku": p["sku"], "name": p.get("name"), "quantity": Decimal(str(p["quantity"]))}
                         for p in o.products]}


ORDER_MOVES = {"start": (("submitted",), "in_progress"), "fulfil": (("submitted", "in_progress"), "fulfilled"),
               "reject": (("submitted", "in_progress"), "rejected")}


def move_order(uow, order_id: int, action: str, *, user, note: str | None, now):
    s = uow.session
    o = get(s, order_id)
    expect, target = ORDER_MOVES[action]
    values = {"status": target, "handled_by": user.id, "updated_at": now}
    if note is not None:
        values["note"] = note
    res = s.execute(od.update().where(od.c.id == order_id, od.c.status.in_(expect)).values(**values))
    if res.rowcount != 1:
        raise Conflict(f"The order is {o.status}; it cannot be {target.replace('_', ' ')} now.")
    o = get(s, order_id)
    if target == "fulfilled":
        uow.emit("order.fulfilled", order_event(o), aggregate_type="order", aggregate_id=o.id)
    return o
