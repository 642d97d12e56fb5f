"""Leads: intake, list and detail, edits, follow-ups, status, conversion, history, CSV import."""
from __future__ import annotations

import json

from flask.views import MethodView
from sqlalchemy import and_, or_, select

from crm_shared.csvsafe import csv_response
from crm_shared.web.auth import require_roles
from crm_shared.web.blueprint import Blueprint
from crm_shared.web.errors import Conflict

from .. import schemas as s
from ..domain import access, imports, intake, lifecycle, pool
from ..domain.errors import DomainError, Invalid, NotFound
from ..models import follow_ups, lead_history, leads
from .common import actor, domain_error, now, page, path, present, runtime, uow

blp = Blueprint("leads", __name__, url_prefix="/v1/leads", description="Leads: intake, follow-ups, lifecycle")
blp.app_errorhandler(DomainError)(domain_error)

MANAGERS = ("sales_manager",)

LIST_COUNT_LIMIT = 10_000  # `total` of a list is counted up to this (`total_is_lower_bound` beyond)


def answer(result, a):
    """201 with the lead, or 409 with the duplicate (its hit recorded and committed by the caller)."""
    if isinstance(result, intake.Duplicate):
        raise Conflict("This customer is already known.", **result.problem_extra())
    return present(result.lead, a)


@blp.route("")
class Leads(MethodView):
    @blp.arguments(s.LeadIn)
    @blp.response(201, s.LeadOut)
    @blp.alt_response(409, description="A duplicate: `duplicate_of`, `owner_name`, `matched_on`")
    def post(self, data):
        """Create a lead: normalised, deduplicated, scored, and routed (or the rep's own)."""
        u, a = uow(), actor()
        norm = intake.prepare(data)  # bad input is answered before the database is asked anything
        result = intake.intake(u, norm, a, now(), prepared=True)
        if isinstance(result, intake.Duplicate):
            intake.record_duplicate(u, result, a, data.get("source"), now())
        u.commit()
        return answer(result, a)

    @blp.arguments(s.LeadQuery, location="query")
    @blp.response(200, s.LeadPage)
    def get(self, args):
        """Leads this user may see (non-owned ones masked)."""
        a, session = actor(), uow().session
        out = page(session, _visible_query(session, a, args), args, (leads.c.id.desc(),),
                   count_limit=LIST_COUNT_LIMIT)
        out["items"] = [present(r, a) for r in out["items"]]
        return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible_query(session, a, args):
    q = select(leads)
    clause = access.visible_clause(session, a, include_pool=False)
    if clause is not None:
        q = q.where(clause)
    for f in ("status", "owner_id", "team_id", "source", "campaign_id", "tier", "province", "city", "industry"):
        if args.get(f) is not None:
            q = q.where(getattr(leads.c, f) == args[f])
    if args.get("email_domain"):
        domain = args["email_domain"].strip().lower()
        # fallback for leads the previous release wrote without email_domain (dropped in the
        # contract step, see migrations/versions/0003_lead_email_domain.py)
        q = q.where(or_(leads.c.email_domain == domain,
                        and_(leads.c.email_domain.is_(None), leads.c.email.like(f"%@{_escape(domain)}", escape="\\"))))
    if args.get("q"):
        # % and _ in the search are the characters themselves, not LIKE wildcards
        like = "%" + _escape(args["q"]) + "%"
        q = q.where(or_(leads.c.name.ilike(like, escape="\\"), leads.c.company.ilike(like, escape="\\")))
    return q


EXPORT_COLUMNS = ["id", "name", "company", "phone", "email", "province", "city", "industry", "source", "status",
                  "owner_id", "owner_name", "team_id", "score", "tier", "note", "created_at", "last_follow_up_at"]
EXPORT_MAX_ROWS = 50_000


@blp.route("/export")
class Export(MethodView):
    @blp.arguments(s.LeadExportQuery, location="query")
    @blp.response(200, {"type": "string", "description": "a header row, then a row per lead (UTF-8, BOM)"},
                  content_type="text/csv")
    def get(self, args):
        """The leads this user may see as CSV (the list's filters; non-owned contact data masked,
        at most 50,000 rows, newest first). Cells that a spreadsheet would run as a formula
        (= + - @ tab CR) are prefixed with an apostrophe."""
        a, session = actor(), uow().session
        rows = session.execute(_visible_query(session, a, args).order_by(leads.c.id.desc())
                               .limit(EXPORT_MAX_ROWS)).mappings()
        return csv_response(EXPORT_COLUMNS, (access.present(r, a) for r in rows), "leads.csv")


@blp.route("/<int:lead_id>")
class Lead(MethodView):
    @blp.response(200, s.LeadOut)
    def get(self, lead_id):
        """One lead. A manager or admin who does not own it sees the full contact data, logged."""
        a, u = actor(), uow()
        row = access.load(u.session, lead_id, a)
        out = present(row, a, full=True, session=u.session, now=now(), path=path())
        u.commit()
        return out

    @blp.arguments(s.LeadPatch)
    @blp.response(200, s.LeadOut)
    def patch(self, data, lead_id):
        """Change a lead's data (re-normalised, re-checked for duplicates, re-scored)."""
        a, u = actor(), uow()
        row = lifecycle.edit(u, lead_id, a, data, now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/assign")
class Assign(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.AssignIn)
    @blp.response(200, s.LeadOut)
    def post(self, data, lead_id):
        """Manual assignment or transfer by a manager."""
        a, u = actor(), uow()
        row = pool.assign(u, lead_id, a, data["user_id"], data["reason"], now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/claim")
class Claim(MethodView):
    @require_roles("sales_rep", "sales_manager")
    @blp.response(200, s.LeadOut)
    def post(self, lead_id):
        """Take a pooled lead (exactly one of several simultaneous claimers wins)."""
        a, u = actor(), uow()
        row = pool.claim(u, lead_id, a, now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/release")
class Release(MethodView):
    @blp.arguments(s.ReasonIn)
    @blp.response(200, s.LeadOut)
    def post(self, data, lead_id):
        """Give a lead back to the pool."""
        a, u = actor(), uow()
        row = pool.release(u, lead_id, a, data["reason"], now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/lock")
class Lock(MethodView):
    @blp.response(200, s.LeadOut)
    def post(self, lead_id):
        """Protect a lead from recycling (within the owner's lock quota)."""
        a, u = actor(), uow()
        row = pool.set_lock(u, lead_id, a, True, now())
        u.commit()
        return present(row, a)

    @blp.response(200, s.LeadOut)
    def delete(self, lead_id):
        """Unlock: the lead can be recycled again."""
        a, u = actor(), uow()
        row = pool.set_lock(u, lead_id, a, False, now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/follow-ups")
class FollowUps(MethodView):
    @blp.arguments(s.FollowUpIn)
    @blp.response(201, s.FollowUpOut)
    def post(self, data, lead_id):
        """Log a contact (owner or their manager); resets the recycle clock."""
        a, u = actor(), uow()
        out = lifecycle.follow_up(u, lead_id, a, data, now())
        u.commit()
        return out

    @blp.response(200, s.FollowUpList)
    def get(self, lead_id):
        a, session = actor(), uow().session
        row = access.load(session, lead_id, a, include_pool=False)
        items = session.execute(select(follow_ups).where(follow_ups.c.lead_id == row["id"])
                                .order_by(follow_ups.c.created_at, follow_ups.c.id)).mappings().all()
        return {"items": items}


@blp.route("/<int:lead_id>/status")
class Status(MethodView):
    @blp.arguments(s.StatusIn)
    @blp.response(200, s.LeadOut)
    @blp.alt_response(409, description="An illegal transition")
    def post(self, data, lead_id):
        """Move a lead forward: new → contacted → qualified."""
        a, u = actor(), uow()
        row = lifecycle.set_status(u, lead_id, a, data["status"], now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/convert")
class Convert(MethodView):
    @blp.arguments(s.ConvertIn)
    @blp.response(200, s.LeadOut)
    def post(self, data, lead_id):
        """A qualified lead converts: lead.converted tells sales to create the customer and opportunity."""
        a, u = actor(), uow()
        row = lifecycle.convert(u, lead_id, a, data, now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/disqualify")
class Disqualify(MethodView):
    @blp.arguments(s.ReasonIn)
    @blp.response(200, s.LeadOut)
    def post(self, data, lead_id):
        a, u = actor(), uow()
        row = lifecycle.disqualify(u, lead_id, a, data["reason"], now())
        u.commit()
        return present(row, a)


@blp.route("/<int:lead_id>/history")
class History(MethodView):
    @blp.response(200, s.HistoryList)
    def get(self, lead_id):
        """Every change of owner and every follow-up, in time order, with who and why."""
        a, session = actor(), uow().session
        row = access.load(session, lead_id, a, include_pool=False)
        items = session.execute(select(lead_history).where(lead_history.c.lead_id == row["id"])
                                .order_by(lead_history.c.id)).mappings().all()
        return {"items": items}


@blp.route("/import")
class Import(MethodView):
    @require_roles("sales_manager", "ops")
    @blp.arguments(s.ImportForm, location="form")
    @blp.arguments(s.ImportFiles, location="files")
    @blp.response(200, s.ImportOut)
    def post(self, form, files):
        """Import a CSV (UTF-8, UTF-8 with BOM, or GBK), up to 50,000 rows, with a column mapping.
        Answers with counts and a per-row report."""
        mapping = None
        if form.get("mapping"):
            try:
                mapping = json.loads(form["mapping"])
            except ValueError:
                raise Invalid({"mapping": ["Not valid JSON."]})
            if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in mapping.items()):
                raise Invalid({"mapping": ['Must be an object {"column": "field"}.']})
        upload = files["file"]
        raw = upload.read() if hasattr(upload, "read") else bytes(upload)
        if form.get("campaign_id") is not None:
            from ..domain import campaigns
            try:
                campaigns.get(uow().session, form["campaign_id"])
            except NotFound:
                raise Invalid({"campaign_id": [f"No campaign {form['campaign_id']}."]})
        return imports.run(runtime(), raw, mapping, actor(), encoding=form.get("encoding"),
                           source=form["source"], campaign_id=form.get("campaign_id"))

