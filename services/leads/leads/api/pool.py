"""The pool, its policy, ownership lookup, scoring weights and the access log."""
from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from crm_shared.web.auth import require_roles
from crm_shared.web.blueprint import Blueprint

from .. import schemas as s
from ..domain import lookup, normalise, policy, scoring
from ..domain.errors import Invalid
from ..domain import teams as team_rules
from ..models import access_log, leads
from .common import actor, now, page, present, uow

POOL_COUNT_LIMIT = 10_000  # `total` of the pool is counted up to this

blp = Blueprint("pool", __name__, url_prefix="/v1", description="The shared pool, its policy, ownership lookup")


@blp.route("/pool")
class Pool(MethodView):
    @blp.arguments(s.PoolQuery, location="query")
    @blp.response(200, s.LeadPage)
    def get(self, args):
        """Pooled leads, contact data masked."""
        a, session = actor(), uow().session
        q = select(leads).where(leads.c.status == "pooled")
        for f in ("team_id", "source", "campaign_id", "tier", "province", "city", "industry"):
            if args.get(f) is not None:
                q = q.where(getattr(leads.c, f) == args[f])
        if args.get("tag"):
            q = q.where(leads.c.tags.like(f"%{args['tag']}%"))
        out = page(session, q, args, (leads.c.pooled_at.desc(), leads.c.id.desc()), count_limit=POOL_COUNT_LIMIT)
        out["items"] = [present(r, a) for r in out["items"]]
        return out


@blp.route("/pool-policy")
class PoolPolicy(MethodView):
    @blp.arguments(s.PolicyQuery, location="query")
    @blp.response(200, s.PolicyOut)
    def get(self, args):
        """The pool policy of a team (with the company default filled in), or the company default."""
        session = uow().session
        if args.get("team_id") is not None:
            team_rules.get(session, args["team_id"])
        return {**policy.load(session, args.get("team_id")), "team_id": args.get("team_id")}

    @require_roles("sales_manager")
    @blp.arguments(s.PolicyQuery, location="query")
    @blp.arguments(s.PolicyFields)
    @blp.response(200, s.PolicyOut)
    def put(self, args, data):
        """Change the policy of a team (`?team_id=`) or the company default; fields left out are kept."""
        u = uow()
        if args.get("team_id") is not None:
            team_rules.get(u.session, args["team_id"])
        out = policy.save(u.session, args.get("team_id"), data, now())
        u.commit()
        return {**out, "team_id": args.get("team_id")}


@blp.route("/lookup")
class Lookup(MethodView):
    @blp.arguments(s.LookupQuery, location="query")
    @blp.response(200, s.LookupOut)
    def get(self, args):
        """撞单查询: is this customer known, pooled or owned, and by whom (names only, contact masked)."""
        if not any(args.get(k) for k in ("phone", "email", "company")):
            raise Invalid({"_query": ["Give phone, email or company."]})
        try:
            return lookup.lookup(uow().session, args.get("phone"), args.get("email"), args.get("company"),
                                 args.get("city"))
        except normalise.Invalid as exc:
            raise Invalid({"phone" if args.get("phone") else "email": [str(exc)]})


@blp.route("/scoring")
class Scoring(MethodView):
    @blp.response(200, s.ScoringIn)
    def get(self):
        """The scoring weights in force."""
        return scoring.load(uow().session)

    @require_roles("sales_manager")
    @blp.arguments(s.ScoringIn)
    @blp.response(200, s.ScoringIn)
    def put(self, data):
        """Change scoring weights (merged into the current ones); applies to leads scored from now on."""
        u = uow()
        out = scoring.save(u.session, scoring.merge(scoring.load(u.session), data), now())
        u.commit()
        return out


@blp.route("/access-log")
class AccessLog(MethodView):
    @require_roles("admin")
    @blp.arguments(s.PageQuery, location="query")
    @blp.response(200, s.AccessLogList)
    def get(self, args):
        """Who saw full contact data of leads they do not own."""
        return page(uow().session, select(access_log), args, (access_log.c.id.desc(),))
