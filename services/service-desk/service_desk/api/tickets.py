"""Tickets: filing, listing, the ticket screen, comments, status moves, reassignment, referrals."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema
from sqlalchemy import and_, select

from crm_shared.fields import Text
from crm_shared.web.auth import current_user, require_roles
from crm_shared.web.errors import Forbidden, NotFound

from .. import schemas
from ..domain import access, customers, escalation, sla
from ..domain import tickets as rules
from ..domain.common import aware, history
from ..models import tickets
from .common import calendar, now, register_errors, uow

blp = Blueprint("tickets", __name__, url_prefix="/v1/tickets", description="Tickets")
register_errors(blp)
WRITERS = ("service_agent", "service_supervisor", "service")


class EscalationIn(Schema):
    reason = Text(max_length=2000, allow_none=True, load_default=None,
                  metadata={"description": "why (kept in the ticket's timeline)"})


TS_FIELDS = ("created_at", "updated_at", "assigned_at", "first_response_at", "pending_since", "resolved_at", "closed_at")


def represent(session, rows) -> list[dict]:
    dues = sla.due_summaries(session, [r["id"] for r in rows])
    out = []
    for r in rows:
        d = dict(r)
        for f in TS_FIELDS:
            d[f] = aware(d[f])
        if d.get("resolution_seconds") is None and d["resolved_at"] is not None:
            # resolved by the previous release (before 0003): computed until the contract step
            d["resolution_seconds"] = rules.resolution_elapsed(d["created_at"], d["resolved_at"]) - (d["held_seconds"] or 0)
        d["sla"] = dues[r["id"]]
        d["breached"] = any(t["breached_at"] is not None for t in d["sla"].values())
        out.append(d)
    return out


def visible(ticket_id: int, write: bool = False):
    """The ticket if the user may see it (404 otherwise; 403 when they may only read it)."""
    user = current_user()
    q = select(tickets).where(tickets.c.id == ticket_id)
    cond = access.scope(user)
    if cond is not None:
        q = q.where(cond)
    row = uow().session.execute(q).mappings().first()
    if row is None:
        raise NotFound(f"No ticket {ticket_id}.")
    if write and not access.can_write(user):
        raise Forbidden("Sales staff see the tickets of their customers read-only.")
    return row


def detail(ticket_id: int) -> dict:
    s = uow().session
    row = rules.get(s, ticket_id)
    d = represent(s, [row])[0]
    tz = calendar().zone
    d["customer"] = customers.context(s, row["customer_id"], now().astimezone(tz).date(), exclude_ticket=ticket_id)
    d["comments"] = rules.list_comments(s, ticket_id)
    d["timeline"] = history(s, ticket_id)
    return d


@blp.route("")
class Tickets(MethodView):
    @require_roles(*WRITERS)
    @blp.arguments(schemas.TicketIn)
    @blp.response(201, schemas.TicketOut)
    def post(self, data):
        """File a ticket: it goes to its type's queue and, at once, to the least-loaded free agent."""
        u = uow()
        tid = rules.create(u, calendar(), now(), data, current_user().id)
        u.commit()
        return represent(u.session, [rules.get(u.session, tid)])[0]

    @blp.arguments(schemas.TicketQuery, location="query")
    @blp.response(200, schemas.TicketOut(many=True))
    def get(self, args):
        """Tickets the caller may see, filtered; best-ranked (gold, urgent) first, then oldest."""
        user = current_user()
        q = select(tickets)
        cond = access.scope(user)
        conds = [] if cond is None else [cond]
        for f in ("status", "type", "queue", "customer_id"):
            if f in args:
                conds.append(tickets.c[f] == args[f])
        if "assignee" in args:
            conds.append(tickets.c.assignee_id == (user.id if args["assignee"] == "me" else args["assignee"]))
        if "breached" in args:
            conds.append(sla.breached_filter(args["breached"]))
        if conds:
            q = q.where(and_(*conds))
        q = q.order_by(tickets.c.rank, tickets.c.created_at, tickets.c.id).limit(args["limit"]).offset(args["offset"])
        s = uow().session
        return represent(s, s.execute(q).mappings().all())


@blp.route("/<int:ticket_id>")
class Ticket(MethodView):
    @blp.response(200, schemas.TicketDetailOut)
    def get(self, ticket_id):
        """The ticket with its SLA timers, comments, timeline and the customer's context."""
        visible(ticket_id)
        return detail(ticket_id)


@blp.route("/<int:ticket_id>/comments")
class Comments(MethodView):
    @blp.arguments(schemas.CommentIn)
    @blp.response(201, schemas.CommentOut)
    def post(self, data, ticket_id):
        """A public reply (stops the first-response timer), an internal note, or a customer's message."""
        visible(ticket_id, write=True)
        u = uow()
        cid = rules.add_comment(u, calendar(), ticket_id, data["body"], data["public"], data["from_customer"],
                                current_user().id, now())
        u.commit()
        return next(c for c in rules.list_comments(u.session, ticket_id) if c["id"] == cid)


@blp.route("/<int:ticket_id>/status")
class Status(MethodView):
    @blp.arguments(schemas.StatusIn)
    @blp.response(200, schemas.TicketOut)
    def post(self, data, ticket_id):
        """Move the ticket: open->pending (SLA paused), pending->open, ->resolved (CSAT request),
        resolved->closed, resolved/closed->open (reopen, within 7 days). Anything else: 409."""
        visible(ticket_id, write=True)
        u = uow()
        rules.set_status(u, calendar(), ticket_id, data["status"], current_user().id, now(), data["note"])
        u.commit()
        return represent(u.session, [rules.get(u.session, ticket_id)])[0]


@blp.route("/<int:ticket_id>/assignment")
class Assignment(MethodView):
    @require_roles("service_supervisor")
    @blp.arguments(schemas.AssignmentIn)
    @blp.response(200, schemas.TicketOut)
    def post(self, data, ticket_id):
        """A supervisor reassigns the ticket (the agent must be active and below max_open)."""
        u = uow()
        rules.reassign(u, ticket_id, data["assignee_id"], current_user().id, now())
        u.commit()
        return represent(u.session, [rules.get(u.session, ticket_id)])[0]


@blp.route("/<int:ticket_id>/escalate")
class Escalate(MethodView):
    @require_roles(*WRITERS)
    @blp.arguments(EscalationIn)
    @blp.response(200, schemas.TicketOut)
    def post(self, data, ticket_id):
        """Escalate a live ticket to its queue's supervisor now, before any SLA breach (the scan does
        it on a breach): `ticket.escalated` tells the supervisor. 409 when the ticket is already
        escalated, resolved or closed, or its queue has no supervisor."""
        visible(ticket_id, write=True)
        u = uow()
        escalation.escalate(u, ticket_id, current_user().id, now(), data["reason"])
        u.commit()
        return represent(u.session, [rules.get(u.session, ticket_id)])[0]


@blp.route("/<int:ticket_id>/referral")
class Referral(MethodView):
    @blp.arguments(schemas.ReferralIn)
    @blp.response(201, schemas.ReferralOut)
    def post(self, data, ticket_id):
        """An agent heard of a new need: leads turns `referral.spotted` into a lead for the account owner."""
        t = visible(ticket_id, write=True)
        u = uow()
        cust = customers.get(u.session, t["customer_id"]) or {}
        payload = {"ticket_id": str(ticket_id), "customer_id": t["customer_id"], "owner_id": cust.get("owner_id"),
                   "agent_id": current_user().id, "note": data["note"],
                   "customer_name": data["customer_name"] or cust.get("name"),
                   "phone": data["phone"] or cust.get("phone"), "email": data["email"] or cust.get("email")}
        u.emit("referral.spotted", payload, aggregate_type="ticket", aggregate_id=ticket_id)
        from ..domain.common import record
        record(u.session, ticket_id, now(), "referral", current_user().id, note=data["note"])
        u.commit()
        return {"ticket_id": ticket_id, "customer_id": t["customer_id"], "owner_id": cust.get("owner_id"),
                "note": data["note"]}
