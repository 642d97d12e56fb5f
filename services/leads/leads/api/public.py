"""Public intake for the company website and ad platforms, authenticated by a per-source key (not
a user token) and rate-limited per client address (crm_shared.web.ratelimit, LEADS_INTAKE_RATE_LIMIT)
and per key (a fixed one-minute window counted in the database, see `domain.sources`). Source keys are managed by managers."""
from __future__ import annotations

from flask.views import MethodView

from crm_shared.web.auth import public, require_roles
from crm_shared.web.blueprint import Blueprint
from crm_shared.web.ratelimit import limited

from .. import schemas as s
from ..domain import intake, sources
from ..domain.actor import Actor
from .common import now, uow

blp = Blueprint("intake", __name__, url_prefix="/v1", description="Public intake by source key")
# a MethodView's methods are not the registered view function, so name the endpoint as public
blp.record_once(lambda state: state.app.config["CRM_PUBLIC_ENDPOINTS"].add("intake.PublicIntake"))


@blp.route("/intake/<source_key>")
class PublicIntake(MethodView):
    @public
    @limited("intake", "LEADS_INTAKE_RATE_LIMIT", "30/minute")  # per client address, before the key's own
    @blp.arguments(s.PublicLeadIn)
    @blp.response(202, s.IntakeAccepted)
    @blp.alt_response(429, description="Too many requests from this address or for this key (Retry-After)")
    @blp.doc(security=[])
    def post(self, data, source_key):
        """A web form or ad platform posts a lead. Always routed; a duplicate is recorded on the
        existing lead (its owner is told) and answered like a new one, so the form learns nothing."""
        u = uow()
        src = sources.by_key(u.session, source_key)
        sources.hit(u.session, src, now())
        u.commit()  # the request counts even if the lead is refused
        who = Actor(id=None, name=f"source {src['name']}", roles=("public",))
        result = intake.create(u, {**data, "source": src["source"], "campaign_id": src["campaign_id"]}, who, now())
        if isinstance(result, intake.Duplicate):
            intake.record_duplicate(u, result, who, src["source"], now())
        u.commit()
        return {"status": "received"}


@blp.route("/sources")
class Sources(MethodView):
    @require_roles("sales_manager")
    @blp.arguments(s.SourceIn)
    @blp.response(201, s.SourceOut)
    def post(self, data):
        """A new source key (shown once)."""
        u = uow()
        out = sources.create(u.session, data, now())
        u.commit()
        return out

    @require_roles("sales_manager")
    @blp.response(200, s.SourceList)
    def get(self):
        return {"items": sources.list_all(uow().session)}
