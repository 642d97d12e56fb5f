"""The approval inbox and decisions, and the policies that decide which requests need whom."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import or_, select

from crm_shared.web.auth import require_roles

from .. import models, schemas
from ..domain import access, approvals
from .common import hidden, now, plain, register_errors, user, uow

blp = Blueprint("approvals", __name__, url_prefix="/v1", description="Approval chain (OA)")
register_errors(blp)
ap = models.approvals


def approval_out(session, row) -> dict:
    d = approvals.describe(session, row)
    if d.get("max_discount_pct") is not None:
        d["max_discount_pct"] = plain(d["max_discount_pct"])
    return d


def _may_see(session, row, u) -> bool:
    if u.has(*access.SEE_ALL) or row.requester_id == u.id:
        return True
    table = models.quotes if row.subject_type == "quote" else models.contracts
    subject = session.execute(select(table.c.owner_id, table.c.team_id).where(table.c.id == row.subject_id)).first()
    if subject is not None and access.can_see(subject, u):
        return True
    step = approvals.current_step(session, row)
    if step is not None and approvals.eligible(step, row, u)[0]:
        return True
    return session.execute(select(models.approval_decisions.c.id).where(
        models.approval_decisions.c.approval_id == row.id, models.approval_decisions.c.actor_id == u.id)).first() is not None


@blp.route("/approvals")
class Approvals(MethodView):
    @blp.arguments(schemas.ApprovalQuery, location="query")
    @blp.response(200, schemas.ApprovalOut(many=True))
    def get(self, args):
        """`status=pending` (the default): the requests whose current step the caller may decide now.
        Other statuses: the caller's own requests and those they took part in (all for admin,
        general_manager and finance)."""
        s, u = uow().session, user()
        if args["status"] == "pending":
            return [approval_out(s, r) for r in approvals.decidable_by(s, u)]
        q = select(ap).where(ap.c.status == args["status"])
        if not u.has(*access.SEE_ALL):
            acted = select(models.approval_decisions.c.approval_id).where(models.approval_decisions.c.actor_id == u.id)
            q = q.where(or_(ap.c.requester_id == u.id, ap.c.id.in_(acted)))
        return [approval_out(s, r) for r in s.execute(q.order_by(ap.c.id).limit(500)).all()]


@blp.route("/approvals/<int:approval_id>")
class Approval(MethodView):
    @blp.response(200, schemas.ApprovalOut)
    def get(self, approval_id):
        s = uow().session
        row = s.execute(select(ap).where(ap.c.id == approval_id)).first()
        if row is None or not _may_see(s, row, user()):
            raise hidden("approval", approval_id)
        return approval_out(s, row)


@blp.route("/approvals/<int:approval_id>/decision")
class Decision(MethodView):
    @blp.arguments(schemas.DecisionIn)
    @blp.response(200, schemas.DecisionOut)
    def post(self, data, approval_id):
        """approve, reject, or return to the requester for rework. A step already decided answers
        409; of two simultaneous decisions exactly one counts."""
        w = uow()
        row = w.session.execute(select(ap).where(ap.c.id == approval_id)).first()
        if row is None or not _may_see(w.session, row, user()):
            raise hidden("approval", approval_id)
        result = approvals.decide(w, approval_id, user(), data["decision"], data.get("comment"), now=now(),
                                  step=data.get("step"))
        w.commit()
        return result


@blp.route("/approvals/<int:approval_id>/withdraw")
class Withdraw(MethodView):
    @blp.arguments(schemas.CommentIn)
    @blp.response(200, schemas.ApprovalOut)
    def post(self, data, approval_id):
        """The requester takes back a pending request; the quote or contract becomes editable again."""
        w = uow()
        row = w.session.execute(select(ap).where(ap.c.id == approval_id)).first()
        if row is None or not _may_see(w.session, row, user()):
            raise hidden("approval", approval_id)
        approvals.withdraw(w, approval_id, user(), data.get("comment"), now=now())
        w.commit()
        return approval_out(w.session, approvals.get(w.session, approval_id))


def _policies_out(items):
    return {"policies": [{**p, "threshold": plain(p["threshold"])} for p in items]}


@blp.route("/approval-policies")
class Policies(MethodView):
    @blp.response(200, schemas.PolicySet)
    def get(self):
        """The policies in force (the defaults until an admin replaces them)."""
        return _policies_out(approvals.policies(uow().session))

    @require_roles("admin")
    @blp.arguments(schemas.PolicySet)
    @blp.response(200, schemas.PolicySet)
    def put(self, data):
        """Replace every policy. Requests already under way keep the steps they started with."""
        w = uow()
        approvals.replace_policies(w.session, data["policies"])
        w.commit()
        return _policies_out(approvals.policies(w.session))
