"""Reports for supervisors."""
from __future__ import annotations

from datetime import datetime, time

from flask.views import MethodView
from flask_smorest import Blueprint

from crm_shared.web.auth import require_roles

from .. import schemas
from ..domain import reports
from .common import calendar, now, uow

blp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Reports")


def _bounds(args):
    z = calendar().zone
    start = datetime.combine(args["start"], time(0), z) if args.get("start") else None
    end = datetime.combine(args["end"], time(0), z) if args.get("end") else None
    return start, end


@blp.route("/sla")
class SlaReport(MethodView):
    @require_roles("service_supervisor")
    @blp.arguments(schemas.ReportQuery, location="query")
    @blp.response(200, schemas.SlaReportOut)
    def get(self, args):
        """Share of SLA timers kept, per queue, priority, agent, target or period (tickets filed
        in [from, to))."""
        start, end = _bounds(args)
        return {"group_by": args["group_by"],
                "rows": reports.sla_report(uow().session, now(), args["group_by"], start, end)}


@blp.route("/csat")
class CsatReport(MethodView):
    @require_roles("service_supervisor")
    @blp.arguments(schemas.ReportQuery, location="query")
    @blp.response(200, schemas.CsatReportOut)
    def get(self, args):
        """Survey answers: response rate, average and distribution, overall and per group."""
        start, end = _bounds(args)
        return {"group_by": args["group_by"], **reports.csat_report(uow().session, args["group_by"], start, end)}
