"""The back-office queue: orders opened by signed contracts, worked by ops."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, orders
from .common import hidden, now, register_errors, user, uow

blp = Blueprint("orders", __name__, url_prefix="/v1/orders", description="Order fulfilment (back office)")
register_errors(blp)
od = models.orders
OPS = ("ops",)


def visible_order(session, oid: int):
    row = session.execute(select(od).where(od.c.id == oid)).first()
    if row is None or not access.can_see(row, user(), extra_all=OPS):
        raise hidden("order", oid)
    return row


@blp.route("")
class Orders(MethodView):
    @blp.arguments(schemas.OrderQuery, location="query")
    @blp.response(200, schemas.OrderOut(many=True))
    def get(self, args):
        """The queue (ops sees every order; a rep their own), oldest first."""
        q = select(od).where(access.scope(od, user(), extra_all=OPS))
        if args.get("status"):
            q = q.where(od.c.status == args["status"])
        return [r._asdict() for r in uow().session.execute(
            q.order_by(od.c.created_at, od.c.id).limit(args["limit"]).offset(args["offset"])).all()]


@blp.route("/<int:order_id>")
class Order(MethodView):
    @blp.response(200, schemas.OrderOut)
    def get(self, order_id):
        return visible_order(uow().session, order_id)._asdict()


def _move(order_id, action, note=None):
    w = uow()
    visible_order(w.session, order_id)
    row = orders.move_order(w, order_id, action, user=user(), note=note, now=now())
    w.commit()
    return row._asdict()


@blp.route("/<int:order_id>/start")
class Start(MethodView):
    @require_roles(*OPS)
    @blp.response(200, schemas.OrderOut)
    def post(self, order_id):
        return _move(order_id, "start")


@blp.route("/<int:order_id>/fulfil")
class Fulfil(MethodView):
    @require_roles(*OPS)
    @blp.arguments(schemas.NoteIn)
    @blp.response(200, schemas.OrderOut)
    def post(self, data, order_id):
        """Done: the note says what was activated; order.fulfilled opens the onboarding ticket."""
        return _move(order_id, "fulfil", data["note"])


@blp.route("/<int:order_id>/reject")
class Reject(MethodView):
    @require_roles(*OPS)
    @blp.arguments(schemas.ReasonIn)
    @blp.response(200, schemas.OrderOut)
    def post(self, data, order_id):
        """Back to the rep with a reason (kept in the order's note)."""
        return _move(order_id, "reject", data["reason"])
