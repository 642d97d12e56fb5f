"""Contracts: creation from an approved quote, approval, signing, renewal, termination, payments."""
from __future__ import annotations

from decimal import Decimal

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, approvals, contracts, money, receivables
from .common import hidden, now, register_errors, user, uow
from .customers import SELLERS
from .quotes import visible_quote

blp = Blueprint("contracts", __name__, url_prefix="/v1/contracts", description="Contracts and receivables")
register_errors(blp)
k = models.contracts


def contract_out(session, row) -> dict:
    d = row._asdict()
    cur = row.currency
    d["amount"] = money.q(Decimal(row.amount), cur)
    plan, due = [], Decimal(0)
    for i in contracts.installments_of(session, row.id):
        x = i._asdict()
        x["amount"], x["paid"] = money.q(Decimal(i.amount), cur), money.q(Decimal(i.paid), cur)
        x["outstanding"] = x["amount"] - x["paid"]
        due += x["outstanding"]
        plan.append(x)
    d["payment_plan"], d["outstanding"] = plan, due
    d["approvals"] = approvals.trail(session, "contract", row.id)
    return d


def visible_contract(session, cid: int):
    row = session.execute(select(k).where(k.c.id == cid)).first()
    if row is None or not access.can_see(row, user()):
        raise hidden("contract", cid)
    return row


@blp.route("")
class Contracts(MethodView):
    @blp.arguments(schemas.ContractQuery, location="query")
    @blp.response(200, schemas.ContractOut(many=True))
    def get(self, args):
        s = uow().session
        q = select(k).where(access.scope(k, user()))
        if args.get("customer_id"):
            q = q.where(k.c.customer_id == args["customer_id"])
        if args.get("status"):
            q = q.where(k.c.status == args["status"])
        return [contract_out(s, r) for r in s.execute(q.order_by(k.c.id).limit(args["limit"]).offset(args["offset"]))]

    @require_roles(*SELLERS)
    @blp.arguments(schemas.ContractIn)
    @blp.response(201, schemas.ContractOut)
    def post(self, data):
        """A draft contract from an approved quote; the installments must add up to the quote total (422)."""
        w = uow()
        quote = visible_quote(w.session, data["quote_id"])
        cid = contracts.create(w.session, quote=quote, start_date=data["start_date"], end_date=data["end_date"],
                               payment_plan=data["payment_plan"], now=now())
        w.commit()
        return contract_out(w.session, contracts.get(w.session, cid))


@blp.route("/<int:contract_id>")
class Contract(MethodView):
    @blp.response(200, schemas.ContractOut)
    def get(self, contract_id):
        s = uow().session
        return contract_out(s, visible_contract(s, contract_id))


@blp.route("/<int:contract_id>/submit")
class Submit(MethodView):
    @require_roles(*SELLERS)
    @blp.response(200, schemas.ContractOut)
    def post(self, contract_id):
        """Into approval by amount (base currency) per policy, or approved at once."""
        w = uow()
        visible_contract(w.session, contract_id)
        contracts.submit(w, contract_id, user(), now=now())
        w.commit()
        return contract_out(w.session, contracts.get(w.session, contract_id))


@blp.route("/<int:contract_id>/sign")
class Sign(MethodView):
    @require_roles(*SELLERS)
    @blp.arguments(schemas.SignIn)
    @blp.response(200, schemas.ContractOut)
    def post(self, data, contract_id):
        """Sign an approved contract: contract.signed, and an order for back office."""
        w = uow()
        visible_contract(w.session, contract_id)
        contracts.sign(w, contract_id, data["signed_on"], now=now())
        w.commit()
        return contract_out(w.session, contracts.get(w.session, contract_id))


@blp.route("/<int:contract_id>/renew")
class Renew(MethodView):
    @require_roles(*SELLERS)
    @blp.arguments(schemas.RenewIn)
    @blp.response(201, schemas.ContractOut)
    def post(self, data, contract_id):
        """The successor contract (a draft copied from this one, for the next period by default)."""
        w = uow()
        visible_contract(w.session, contract_id)
        new_id = contracts.renew(w, contract_id, now=now(), start_date=data.get("start_date"),
                                 end_date=data.get("end_date"))
        w.commit()
        return contract_out(w.session, contracts.get(w.session, new_id))


@blp.route("/<int:contract_id>/terminate")
class Terminate(MethodView):
    @require_roles("sales_manager", "general_manager")
    @blp.arguments(schemas.ReasonIn)
    @blp.response(200, schemas.ContractOut)
    def post(self, data, contract_id):
        w = uow()
        visible_contract(w.session, contract_id)
        contracts.terminate(w, contract_id, data["reason"], now=now())
        w.commit()
        return contract_out(w.session, contracts.get(w.session, contract_id))


@blp.route("/<int:contract_id>/payments")
class Payments(MethodView):
    @blp.response(200, schemas.PaymentOut(many=True))
    def get(self, contract_id):
        s = uow().session
        c = visible_contract(s, contract_id)
        out = []
        for p in s.execute(select(models.payments).where(models.payments.c.contract_id == contract_id)
                           .order_by(models.payments.c.id)).all():
            d = p._asdict()
            d["amount"] = money.q(Decimal(p.amount), c.currency)
            d["allocations"] = [{"installment_id": a.installment_id, "amount": money.q(Decimal(a.amount), c.currency)}
                                for a in s.execute(select(models.allocations).where(
                                    models.allocations.c.payment_id == p.id).order_by(models.allocations.c.id))]
            out.append(d)
        return out

    @require_roles("finance")
    @blp.arguments(schemas.PaymentIn)
    @blp.response(201, schemas.PaymentOut)
    def post(self, data, contract_id):
        """Record a payment, allocated to the oldest open installments. More than is outstanding:
        422; a reference already recorded: 409."""
        w = uow()
        visible_contract(w.session, contract_id)
        result = receivables.record_payment(w, contract_id, amount=data["amount"], paid_on=data["paid_on"],
                                          reference=data["reference"], user=user(), now=now())
        w.commit()
        return result
