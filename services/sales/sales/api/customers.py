"""Customers, opportunities and products."""
from __future__ import annotations

from decimal import Decimal

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import and_, or_, select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, customers, money, pipeline
from ..domain.errors import Conflict
from .common import hidden, now, register_errors, user, uow

blp = Blueprint("customers", __name__, url_prefix="/v1", description="Customers, pipeline and products")
register_errors(blp)
c, o, p = models.customers, models.opportunities, models.products
SELLERS = ("sales_rep", "sales_manager")


def customer_out(session, row) -> dict:
    d = row._asdict()
    t = models.customer_tickets
    open_rows = session.execute(select(t.c.type).where(t.c.customer_id == row.id, t.c.status == "open")).scalars().all()
    d["open_tickets"] = len(open_rows)
    d["open_complaints"] = sum(1 for x in open_rows if x == "complaint")
    d["contacts"] = [x._asdict() for x in session.execute(
        select(models.contacts).where(models.contacts.c.customer_id == row.id).order_by(models.contacts.c.id)).all()]
    return d


def visible_customer(session, cid: int, lock=False):
    row = session.execute(select(c).where(c.c.id == cid)).first()
    if row is None or not access.can_see(row, user()):
        raise hidden("customer", cid)
    return row


@blp.route("/customers")
class Customers(MethodView):
    @blp.arguments(schemas.CustomerQuery, location="query")
    @blp.response(200, schemas.CustomerOut(many=True))
    def get(self, args):
        """Customers the caller may see: a rep their own, a manager the team's, finance and admin all."""
        s = uow().session
        q = select(c).where(access.scope(c, user()))
        if args.get("owner"):
            q = q.where(c.c.owner_id == args["owner"])
        if args.get("tier"):
            q = q.where(c.c.tier == args["tier"])
        if "churn_risk" in args:
            q = q.where(c.c.churn_risk.is_(args["churn_risk"]))
        if args.get("email_domain"):
            domain = args["email_domain"].strip().lower()
            # customers an older release wrote have no email_domain yet (fallback dropped in the
            # contract step: migrations/versions/0003_customer_email_domain.py)
            like = "%@" + domain.replace("\\", "").replace("%", "").replace("_", "")
            q = q.where(or_(c.c.email_domain == domain, and_(c.c.email_domain.is_(None), c.c.email_key.like(like))))
        if args.get("q"):
            like = f"%{args['q'].replace('%', '').replace('_', '')}%"
            q = q.where(or_(c.c.name.ilike(like), c.c.company.ilike(like), c.c.phone.ilike(like)))
        rows = s.execute(q.order_by(c.c.id).limit(args["limit"]).offset(args["offset"])).all()
        return [customer_out(s, r) for r in rows]

    @require_roles(*SELLERS)
    @blp.arguments(schemas.CustomerIn)
    @blp.response(201, schemas.CustomerOut)
    def post(self, data):
        """Manual entry; a duplicate (phone, email, or company in the same city) answers 409."""
        u = user()
        data = dict(data)
        owner = data.pop("owner_id", None)
        if owner and owner != u.id and not u.has("sales_manager", "admin"):
            owner = None
        data.update(owner_id=owner or u.id, team_id=u.team)
        w = uow()
        try:
            row = customers.create(w, data, now=now(), source="manual")
        except Conflict as exc:
            visible = access.can_see(type("R", (), {"owner_id": exc.extra.get("_owner"),
                                                    "team_id": exc.extra.get("_team")})(), u)
            if not visible:
                exc.extra.pop("duplicate_of", None)
            raise
        w.commit()
        return customer_out(w.session, row)


@blp.route("/customers/<int:customer_id>")
class Customer(MethodView):
    @blp.response(200, schemas.CustomerOut)
    def get(self, customer_id):
        s = uow().session
        return customer_out(s, visible_customer(s, customer_id))

    @require_roles(*SELLERS)
    @blp.arguments(schemas.CustomerPatch)
    @blp.response(200, schemas.CustomerOut)
    def patch(self, data, customer_id):
        """Change a customer (the revision goes up and customer.updated carries it). Reassigning the
        owner or team needs a manager."""
        w = uow()
        visible_customer(w.session, customer_id)
        if ({"owner_id", "team_id"} & data.keys()) and not user().has("sales_manager", "admin"):
            raise _forbidden("Reassigning a customer needs a manager.")
        row = customers.update_fields(w, customer_id, data, now=now())
        w.commit()
        return customer_out(w.session, row)


def _forbidden(msg):
    from crm_shared.web.errors import Forbidden
    return Forbidden(msg)


def opportunity_out(row) -> dict:
    d = row._asdict()
    d["expected_amount"] = money.q(Decimal(row.expected_amount), row.currency)
    d["probability"] = pipeline.PROBABILITY[row.stage]
    return d


def visible_opportunity(session, oid: int):
    row = session.execute(select(o).where(o.c.id == oid)).first()
    if row is None or not access.can_see(row, user()):
        raise hidden("opportunity", oid)
    return row


@blp.route("/opportunities")
class Opportunities(MethodView):
    @blp.arguments(schemas.OpportunityQuery, location="query")
    @blp.response(200, schemas.OpportunityOut(many=True))
    def get(self, args):
        q = select(o).where(access.scope(o, user()))
        for key, col in (("customer_id", o.c.customer_id), ("lead_id", o.c.lead_id), ("stage", o.c.stage),
                         ("owner", o.c.owner_id)):
            if args.get(key) is not None:
                q = q.where(col == args[key])
        rows = uow().session.execute(q.order_by(o.c.id).limit(args["limit"]).offset(args["offset"])).all()
        return [opportunity_out(r) for r in rows]

    @require_roles(*SELLERS)
    @blp.arguments(schemas.OpportunityIn)
    @blp.response(201, schemas.OpportunityOut)
    def post(self, data):
        """A new opportunity for an existing customer (e.g. an upsell), owned by the caller."""
        w = uow()
        cust = visible_customer(w.session, data["customer_id"])
        money.check_currency(data["currency"])
        amount = money.exact(data["expected_amount"], data["currency"], "expected_amount")
        oid = pipeline.create(w.session, customer_id=cust.id, name=data["name"], amount=amount,
                              currency=data["currency"], owner_id=user().id, team_id=user().team or cust.team_id,
                              lead_id=None, now=now(), expected_close=data.get("expected_close"))
        w.commit()
        return opportunity_out(pipeline.get(w.session, oid))


@blp.route("/opportunities/<int:opportunity_id>")
class Opportunity(MethodView):
    @blp.response(200, schemas.OpportunityOut)
    def get(self, opportunity_id):
        return opportunity_out(visible_opportunity(uow().session, opportunity_id))

    @require_roles(*SELLERS)
    @blp.arguments(schemas.OpportunityPatch)
    @blp.response(200, schemas.OpportunityOut)
    def patch(self, data, opportunity_id):
        """Move the stage (qualification → needs_analysis → proposal → negotiation → won / lost; lost
        needs `lost_reason`) or edit the amount and expected close date."""
        w = uow()
        visible_opportunity(w.session, opportunity_id)
        row = pipeline.move(w.session, opportunity_id, data, now=now())
        w.commit()
        return opportunity_out(row)


def product_out(row) -> dict:
    d = row._asdict()
    d["list_price"] = money.q(Decimal(row.list_price), row.currency)
    return d


@blp.route("/products")
class Products(MethodView):
    @blp.response(200, schemas.ProductOut(many=True))
    def get(self):
        return [product_out(r) for r in uow().session.execute(select(p).order_by(p.c.sku)).all()]

    @require_roles("admin", "sales_manager", "finance")
    @blp.arguments(schemas.ProductIn)
    @blp.response(201, schemas.ProductOut)
    def post(self, data):
        w = uow()
        money.check_currency(data["currency"])
        price = money.exact(data["list_price"], data["currency"], "list_price")
        if price < 0:
            from ..domain.errors import Invalid
            raise Invalid("list_price", "The price cannot be negative.")
        if w.session.execute(select(p.c.id).where(p.c.sku == data["sku"])).first():
            raise Conflict(f"A product with SKU {data['sku']!r} exists.")
        pid = w.session.execute(p.insert().values(sku=data["sku"], name=data["name"], list_price=price,
                                                  currency=data["currency"], active=data["active"])
                                ).inserted_primary_key[0]
        w.commit()
        return product_out(w.session.execute(select(p).where(p.c.id == pid)).first())


@blp.route("/products/<int:product_id>")
class Product(MethodView):
    @require_roles("admin", "sales_manager", "finance")
    @blp.arguments(schemas.ProductPatch)
    @blp.response(200, schemas.ProductOut)
    def patch(self, data, product_id):
        w = uow()
        row = w.session.execute(select(p).where(p.c.id == product_id)).first()
        if row is None:
            raise hidden("product", product_id)
        if "list_price" in data:
            data["list_price"] = money.exact(data["list_price"], row.currency, "list_price")
        if data:
            w.session.execute(p.update().where(p.c.id == product_id).values(**data))
        w.commit()
        return product_out(w.session.execute(select(p).where(p.c.id == product_id)).first())
