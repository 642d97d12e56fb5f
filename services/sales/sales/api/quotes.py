"""Quotes: computed totals, editing while a draft, submission into the approval chain, revisions."""
from __future__ import annotations

from decimal import Decimal

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, approvals, money, quotes
from ..domain.errors import Conflict
from .common import hidden, now, plain, register_errors, user, uow
from .customers import SELLERS, visible_opportunity

blp = Blueprint("quotes", __name__, url_prefix="/v1/quotes", description="Quotes")
register_errors(blp)
qt = models.quotes
MONEY_FIELDS = ("subtotal", "discount_amount", "total")


def quote_out(session, row) -> dict:
    d = row._asdict()
    for f in MONEY_FIELDS:
        d[f] = money.q(Decimal(d[f]), row.currency)
    d["max_discount_pct"] = plain(row.max_discount_pct)
    lines = []
    for l in quotes.lines_of(session, row.id):
        x = l._asdict()
        for f in ("unit_price", "gross", "discount", "net"):
            x[f] = money.q(Decimal(x[f]), row.currency)
        x["quantity"] = plain(l.quantity)
        x["discount_pct"] = plain(l.discount_pct)
        lines.append(x)
    d["lines"] = lines
    d["approvals"] = approvals.trail(session, "quote", row.id)
    return d


def visible_quote(session, qid: int):
    row = session.execute(select(qt).where(qt.c.id == qid)).first()
    if row is None or not access.can_see(row, user()):
        raise hidden("quote", qid)
    return row


@blp.route("")
class Quotes(MethodView):
    @blp.arguments(schemas.QuoteQuery, location="query")
    @blp.response(200, schemas.QuoteOut(many=True))
    def get(self, args):
        s = uow().session
        q = select(qt).where(access.scope(qt, user()))
        if args.get("opportunity_id"):
            q = q.where(qt.c.opportunity_id == args["opportunity_id"])
        if args.get("status"):
            q = q.where(qt.c.status == args["status"])
        return [quote_out(s, r) for r in s.execute(q.order_by(qt.c.id).limit(args["limit"]).offset(args["offset"]))]

    @require_roles(*SELLERS)
    @blp.arguments(schemas.QuoteIn)
    @blp.response(201, schemas.QuoteOut)
    def post(self, data):
        """A draft quote; line totals, discount amount and maximum discount are computed here."""
        w = uow()
        opp = visible_opportunity(w.session, data["opportunity_id"])
        if opp.stage in ("won", "lost"):
            raise Conflict(f"The opportunity is {opp.stage}.")
        qid = quotes.create(w.session, opportunity=opp, currency=data["currency"], lines=data["lines"],
                            owner_id=opp.owner_id, team_id=opp.team_id, now=now())
        w.commit()
        return quote_out(w.session, quotes.get(w.session, qid))


@blp.route("/<int:quote_id>")
class Quote(MethodView):
    @blp.response(200, schemas.QuoteOut)
    def get(self, quote_id):
        s = uow().session
        return quote_out(s, visible_quote(s, quote_id))

    @require_roles(*SELLERS)
    @blp.arguments(schemas.QuotePatch)
    @blp.response(200, schemas.QuoteOut)
    def patch(self, data, quote_id):
        """Edit a draft (or a returned or withdrawn) quote; a submitted one is locked (409)."""
        w = uow()
        visible_quote(w.session, quote_id)
        row = quotes.edit(w.session, quote_id, currency=data.get("currency"), lines=data.get("lines"), now=now())
        w.commit()
        return quote_out(w.session, row)


@blp.route("/<int:quote_id>/submit")
class Submit(MethodView):
    @require_roles(*SELLERS)
    @blp.response(200, schemas.QuoteOut)
    def post(self, quote_id):
        """Start the approval per policy (by maximum line discount); with no policy it is approved at once."""
        w = uow()
        row = visible_quote(w.session, quote_id)
        if not quotes.set_status(w.session, quote_id, "pending_approval", now=now(), expect=quotes.EDITABLE_STATUSES):
            raise Conflict(f"The quote is {row.status}; only a draft, returned or withdrawn quote can be submitted.")
        if not quotes.lines_of(w.session, quote_id):
            raise Conflict("The quote has no lines.")
        u = user()
        aid = approvals.start(w, subject_type="quote", subject_id=quote_id, requester_id=u.id,
                              requester_team=u.team or row.team_id, value=Decimal(row.max_discount_pct),
                              amount=money.q(Decimal(row.total), row.currency), currency=row.currency,
                              max_discount_pct=Decimal(row.max_discount_pct), now=now())
        if aid is None:
            quotes.set_status(w.session, quote_id, "approved", now=now(), expect=("pending_approval",))
        w.commit()
        return quote_out(w.session, quotes.get(w.session, quote_id))


@blp.route("/<int:quote_id>/revise")
class Revise(MethodView):
    @require_roles(*SELLERS)
    @blp.response(201, schemas.QuoteOut)
    def post(self, quote_id):
        """A new draft revision of a locked quote; it needs approval again."""
        w = uow()
        row = visible_quote(w.session, quote_id)
        if row.status in quotes.EDITABLE_STATUSES:
            raise Conflict(f"The quote is {row.status}: edit it instead.")
        qid = quotes.revise(w.session, quote_id, owner_id=row.owner_id, team_id=row.team_id, now=now())
        w.commit()
        return quote_out(w.session, quotes.get(w.session, qid))
