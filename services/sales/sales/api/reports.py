"""Reports (funnel, forecast, sales by rep, receivables aging) and the exchange rates behind them."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, money, receivables, reports
from ..domain.errors import Invalid
from .common import jsonable, now, plain, register_errors, user, uow

blp = Blueprint("reports", __name__, url_prefix="/v1", description="Reports and exchange rates")
register_errors(blp)
READERS = ("sales_rep", "sales_manager", "general_manager", "finance")


def _scope_args(args):
    """A rep sees their own numbers, a manager their team's."""
    u = user()
    if not u.has(*access.SEE_ALL):
        if u.has("sales_manager") and u.team:
            if args.get("team") and args["team"] != u.team:
                args["team"] = u.team
        elif args.get("owner") and args["owner"] != u.id:
            args["owner"] = u.id
    return args


@blp.route("/reports/funnel")
class Funnel(MethodView):
    @require_roles(*READERS)
    @blp.arguments(schemas.PeriodQuery, location="query")
    @blp.response(200, schemas.ReportOut)
    def get(self, args):
        """Count and amount per stage, how many reached each stage, conversion to the next stage;
        for opportunities created in [since, until], per rep (`owner`) or `team`."""
        args = _scope_args(args)
        table = models.opportunities
        data = reports.funnel(uow().session, where=access.scope(table, user()), since=args.get("since"),
                              until=args.get("until"), owner=args.get("owner"), team=args.get("team"))
        return jsonify(jsonable(data))


@blp.route("/reports/forecast")
class Forecast(MethodView):
    @require_roles(*READERS)
    @blp.arguments(schemas.PeriodQuery, location="query")
    @blp.response(200, schemas.ReportOut)
    def get(self, args):
        """Weighted pipeline (amount × stage probability, in the base currency) by expected close month."""
        args = _scope_args(args)
        data = reports.forecast(uow().session, where=access.scope(models.opportunities, user()),
                                owner=args.get("owner"), team=args.get("team"))
        return jsonify(jsonable(data))


@blp.route("/reports/sales-by-rep")
class SalesByRep(MethodView):
    @require_roles(*READERS)
    @blp.arguments(schemas.PeriodQuery, location="query")
    @blp.response(200, schemas.ReportOut)
    def get(self, args):
        """Signed contracts per rep in the period (by signing date), in their currencies and the base currency."""
        data = reports.sales_by_rep(uow().session, where=access.scope(models.contracts, user()),
                                    since=args.get("since"), until=args.get("until"))
        return jsonify(jsonable(data))


@blp.route("/reports/receivables-aging")
class Aging(MethodView):
    @require_roles("finance", "general_manager", "sales_manager")
    @blp.response(200, schemas.ReportOut)
    def get(self):
        """Outstanding installments per customer and currency in buckets current, 1–30, 31–60,
        61–90 and 90+ days overdue, with totals in the base currency."""
        data = receivables.receivables_aging(uow().session, today=now().date(),
                                           where=access.scope(models.contracts, user()))
        return jsonify(jsonable(data))


@blp.route("/exchange-rates")
class Rates(MethodView):
    @blp.response(200, schemas.RatesOut)
    def get(self):
        rows = uow().session.execute(select(models.exchange_rates)).all()
        return {"base_currency": money.BASE_CURRENCY, "rates": {r.currency: plain(r.rate) for r in rows}}

    @require_roles("finance")
    @blp.arguments(schemas.RatesIn)
    @blp.response(200, schemas.RatesOut)
    def put(self, data):
        """Set rates (units of the base currency per unit of each currency); others are kept."""
        w = uow()
        t = models.exchange_rates
        for cur, rate in data["rates"].items():
            money.check_currency(cur, "rates")
            if cur == money.BASE_CURRENCY:
                raise Invalid("rates", f"{cur} is the base currency.")
            if rate.as_tuple().exponent < -10 or rate >= 10**9:
                raise Invalid("rates", f"{cur}: at most 10 decimal places and below 1,000,000,000.")
            w.session.execute(t.delete().where(t.c.currency == cur))
            w.session.execute(t.insert().values(currency=cur, rate=rate, updated_at=now()))
        w.commit()
        return _rates(w.session)


def _rates(session):
    rows = session.execute(select(models.exchange_rates)).all()
    return {"base_currency": money.BASE_CURRENCY, "rates": {r.currency: plain(r.rate) for r in rows}}
