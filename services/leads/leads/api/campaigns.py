"""Campaigns, costs, ROI and the report by source."""
from __future__ import annotations

from flask.views import MethodView

from crm_shared.web.auth import require_roles
from crm_shared.web.blueprint import Blueprint

from .. import schemas as s
from ..domain import campaigns
from .common import actor, now, uow

blp = Blueprint("campaigns", __name__, url_prefix="/v1", description="Campaigns and ROI")
MANAGERS = ("sales_manager",)
READERS = ("sales_manager", "general_manager", "finance")


@blp.route("/campaigns")
class Campaigns(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.CampaignIn)
    @blp.response(201, s.CampaignOut)
    def post(self, data):
        u = uow()
        out = campaigns.create(u.session, data, now())
        u.commit()
        return out

    @blp.response(200, s.CampaignList)
    def get(self):
        return {"items": campaigns.list_all(uow().session)}


@blp.route("/campaigns/<int:campaign_id>")
class Campaign(MethodView):
    @blp.response(200, s.CampaignOut)
    def get(self, campaign_id):
        return campaigns.get(uow().session, campaign_id)


@blp.route("/campaigns/<int:campaign_id>/costs")
class Costs(MethodView):
    @require_roles(*MANAGERS + ("finance",))
    @blp.arguments(s.CostIn)
    @blp.response(201, s.CostOut)
    def post(self, data, campaign_id):
        u = uow()
        out = campaigns.add_cost(u.session, campaign_id, data, actor(), now())
        u.commit()
        return out


@blp.route("/campaigns/<int:campaign_id>/roi")
class Roi(MethodView):
    @require_roles(*READERS)
    @blp.response(200, s.RoiOut)
    def get(self, campaign_id):
        """Leads, converted leads, won contracts and revenue, cost, cost per lead, ROI."""
        return campaigns.roi(uow().session, campaign_id)


@blp.route("/reports/sources")
class BySource(MethodView):
    @require_roles(*READERS)
    @blp.response(200, s.SourceReport)
    def get(self):
        """Leads, conversions, won revenue and campaign cost per source."""
        return {"items": campaigns.by_source(uow().session)}
