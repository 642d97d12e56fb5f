"""The event catalogue (v1): one marshmallow schema per event type and version, and who consumes
what (see ARCHITECTURE.md). Adding an optional field keeps a version; removing or renaming a field,
or making one required, is a new version registered beside the old one."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from .registry import REGISTRY

S = fields.String
Id = fields.String  # ids are opaque strings (UUIDs or numbers as text)


def _money(**kw):
    return fields.Decimal(as_string=True, places=None, allow_nan=False, **kw)


class _Lead(Schema):
    lead_id = Id(required=True)
    owner_id = Id(allow_none=True)
    team_id = Id(allow_none=True)  # the leads service's own team row id
    team_code = S(allow_none=True)  # the team as every other service knows it (the tokens' `team` claim)
    name = S(allow_none=True)
    company = S(allow_none=True)
    source = S(allow_none=True)
    campaign_id = Id(allow_none=True)
    province = S(allow_none=True)
    city = S(allow_none=True)
    industry = S(allow_none=True)
    score = fields.Integer(allow_none=True)
    tier = S(allow_none=True)


@REGISTRY.register("lead.created")
class LeadCreated(_Lead):
    status = S(required=True)


@REGISTRY.register("lead.assigned")
class LeadAssigned(_Lead):
    owner_id = Id(required=True)
    previous_owner_id = Id(allow_none=True)
    reason = S(required=True, validate=validate.OneOf(["auto", "manual", "claim", "transfer"]))
    by_user_id = Id(allow_none=True)


@REGISTRY.register("lead.duplicate_hit")
class LeadDuplicateHit(_Lead):
    matched_on = S(required=True)
    attempted_by = Id(allow_none=True)
    attempted_source = S(allow_none=True)


@REGISTRY.register("lead.followed_up")
class LeadFollowedUp(_Lead):
    follow_up_id = Id(required=True)
    channel = S(required=True)
    next_follow_up_at = fields.AwareDateTime(allow_none=True)


@REGISTRY.register("lead.recycle_warning")
class LeadRecycleWarning(_Lead):
    owner_id = Id(required=True)
    recycle_at = fields.AwareDateTime(required=True)
    rule = S(required=True)


@REGISTRY.register("lead.recycled")
class LeadRecycled(_Lead):
    previous_owner_id = Id(required=True)
    rule = S(required=True)


class _Contact(Schema):
    name = S(allow_none=True)
    phone = S(allow_none=True)
    email = S(allow_none=True)


@REGISTRY.register("lead.converted")
class LeadConverted(_Lead):
    owner_id = Id(required=True)
    contact = fields.Nested(_Contact, required=True)
    referrer_customer_id = Id(allow_none=True)
    opportunity_name = S(required=True)
    expected_amount = _money(allow_none=True)
    currency = S(allow_none=True, validate=validate.Length(equal=3))
    birthday = fields.Date(allow_none=True)
    language = S(allow_none=True)


@REGISTRY.register("lead.disqualified")
class LeadDisqualified(_Lead):
    reason = S(required=True)


class _Customer(Schema):
    customer_id = Id(required=True)
    name = S(required=True)
    owner_id = Id(allow_none=True)
    team_id = Id(allow_none=True)
    tier = S(allow_none=True)
    lead_id = Id(allow_none=True)
    campaign_id = Id(allow_none=True)
    phone = S(allow_none=True)
    email = S(allow_none=True)
    company = S(allow_none=True)
    province = S(allow_none=True)
    city = S(allow_none=True)
    industry = S(allow_none=True)
    birthday = fields.Date(allow_none=True)
    language = S(allow_none=True)
    timezone = S(allow_none=True)
    churn_risk = fields.Boolean(allow_none=True)
    churn_reason = S(allow_none=True)
    churn_risk_raised = fields.Boolean(allow_none=True)  # true on the one update that set the flag
    revision = fields.Integer(allow_none=True)  # lets read models ignore stale updates


REGISTRY.register("customer.created")(type("CustomerCreated", (_Customer,), {}))
REGISTRY.register("customer.updated")(type("CustomerUpdated", (_Customer,), {}))


@REGISTRY.register("customer.churned")
class CustomerChurned(Schema):
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    name = S(allow_none=True)
    reason = S(required=True)


@REGISTRY.register("approval.requested")
class ApprovalRequested(Schema):
    approval_id = Id(required=True)
    step_id = Id(allow_none=True)
    subject_type = S(required=True, validate=validate.OneOf(["quote", "contract"]))
    subject_id = Id(required=True)
    requester_id = Id(required=True)
    approver_ids = fields.List(Id(), required=True)
    approver_role = S(allow_none=True)
    step = fields.Integer(required=True)
    amount = _money(allow_none=True)
    currency = S(allow_none=True)
    max_discount_pct = _money(allow_none=True)
    approver_team = Id(allow_none=True)  # a team-scoped role (sales_manager) decides for this team only
    reminder = fields.Boolean(allow_none=True)  # true when the step has waited past its limit


@REGISTRY.register("approval.decided")
class ApprovalDecided(Schema):
    approval_id = Id(required=True)
    subject_type = S(required=True)
    subject_id = Id(required=True)
    requester_id = Id(required=True)
    approver_id = Id(required=True)
    step = fields.Integer(required=True)
    decision = S(required=True, validate=validate.OneOf(["approve", "reject", "return"]))
    final = fields.Boolean(required=True)
    comment = S(allow_none=True)


class _Contract(Schema):
    contract_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    lead_id = Id(allow_none=True)
    campaign_id = Id(allow_none=True)
    amount = _money(allow_none=True)
    currency = S(allow_none=True)
    start_date = fields.Date(allow_none=True)
    end_date = fields.Date(allow_none=True)


class _Product(Schema):
    sku = S(required=True)
    name = S(allow_none=True)
    quantity = _money(allow_none=True)


@REGISTRY.register("contract.signed")
class ContractSigned(_Contract):
    amount = _money(required=True)
    currency = S(required=True)
    signed_on = fields.Date(allow_none=True)
    products = fields.List(fields.Nested(_Product), load_default=list)


REGISTRY.register("contract.expiring")(type("ContractExpiring", (_Contract,), {}))
REGISTRY.register("contract.terminated")(type("ContractTerminated", (_Contract,), {"reason": S(allow_none=True)}))
REGISTRY.register("contract.renewed")(type("ContractRenewed", (_Contract,), {"successor_id": Id(allow_none=True)}))


class _Order(Schema):
    order_id = Id(required=True)
    contract_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    products = fields.List(fields.Nested(_Product), load_default=list)
    note = S(allow_none=True)


REGISTRY.register("order.submitted")(type("OrderSubmitted", (_Order,), {}))
REGISTRY.register("order.fulfilled")(type("OrderFulfilled", (_Order,), {}))


@REGISTRY.register("payment.received")
class PaymentReceived(Schema):
    payment_id = Id(required=True)
    contract_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    amount = _money(required=True)
    currency = S(required=True)
    paid_on = fields.Date(required=True)
    installment_ids = fields.List(Id(), load_default=list)


@REGISTRY.register("payment.overdue")
class PaymentOverdue(Schema):
    installment_id = Id(required=True)
    contract_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    amount_due = _money(required=True)
    currency = S(required=True)
    due_date = fields.Date(required=True)
    days_overdue = fields.Integer(required=True)


class _Ticket(Schema):
    ticket_id = Id(required=True)
    customer_id = Id(required=True)
    type = S(required=True)
    priority = S(required=True)
    queue = S(required=True)
    subject = S(allow_none=True)
    assignee_id = Id(allow_none=True)
    owner_id = Id(allow_none=True)  # the customer's account owner, when known
    status = S(allow_none=True)  # the ticket's status after this event (new, open, pending, resolved, closed)


REGISTRY.register("ticket.created")(type("TicketCreated", (_Ticket,), {}))
REGISTRY.register("ticket.assigned")(type("TicketAssigned", (_Ticket,), {"assignee_id": Id(required=True)}))
REGISTRY.register("ticket.resolved")(type("TicketResolved", (_Ticket,), {
    # the customer's one-time satisfaction survey token (notify puts it in the survey link)
    "csat_token": S(allow_none=True, load_default=None),
    "csat_expires_at": fields.AwareDateTime(allow_none=True, load_default=None)}))


class _Sla(_Ticket):
    target = S(required=True, validate=validate.OneOf(["first_response", "next_response", "resolution"]))
    due_at = fields.AwareDateTime(required=True)
    supervisor_id = Id(allow_none=True)


REGISTRY.register("ticket.sla_warning")(type("TicketSlaWarning", (_Sla,), {}))
REGISTRY.register("ticket.sla_breached")(type("TicketSlaBreached", (_Sla,), {}))
REGISTRY.register("ticket.escalated")(type("TicketEscalated", (_Sla,), {"escalated_to": Id(allow_none=True)}))


@REGISTRY.register("csat.submitted")
class CsatSubmitted(Schema):
    ticket_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    score = fields.Integer(required=True, validate=validate.Range(1, 5))
    comment = S(allow_none=True)


@REGISTRY.register("referral.spotted")
class ReferralSpotted(Schema):
    ticket_id = Id(required=True)
    customer_id = Id(required=True)
    owner_id = Id(allow_none=True)
    agent_id = Id(required=True)
    note = S(required=True)
    customer_name = S(allow_none=True)
    phone = S(allow_none=True)
    email = S(allow_none=True)


# Who consumes what: every service's queue is bound to these types. The topology is declared from
# here by any process that starts, so an event is never published before its consumers' queues exist.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "lead.created": ("notify",),
    "lead.assigned": ("notify",),
    "lead.duplicate_hit": ("notify",),
    "lead.followed_up": ("notify",),
    "lead.recycle_warning": ("notify",),
    "lead.recycled": ("notify",),
    "lead.converted": ("sales",),
    "lead.disqualified": (),
    "customer.created": ("service-desk", "notify", "leads"),
    "customer.updated": ("service-desk", "notify", "leads"),
    "customer.churned": ("leads",),
    "approval.requested": ("notify",),
    "approval.decided": ("notify",),
    "contract.signed": ("leads", "notify", "service-desk"),
    "contract.expiring": ("notify", "service-desk"),
    "contract.renewed": ("notify", "service-desk"),
    "contract.terminated": ("notify", "service-desk"),
    "order.submitted": ("notify",),  # back office is told; the service desk waits for the fulfilment
    "order.fulfilled": ("notify", "service-desk"),
    "payment.received": ("notify",),
    "payment.overdue": ("notify",),
    "ticket.created": ("notify", "sales"),
    "ticket.assigned": ("notify", "sales"),
    "ticket.resolved": ("notify", "sales"),
    "ticket.sla_warning": ("notify",),
    "ticket.sla_breached": ("notify",),
    "ticket.escalated": ("notify",),
    "csat.submitted": ("sales", "notify"),
    "referral.spotted": ("leads",),
}

PRODUCERS: dict[str, str] = {t: "leads" for t in CONSUMERS if t.startswith("lead.")}
PRODUCERS.update({"customer.created": "sales", "customer.updated": "sales", "customer.churned": "sales",
                  "approval.requested": "sales", "approval.decided": "sales", "contract.signed": "sales",
                  "contract.expiring": "sales", "contract.renewed": "sales", "contract.terminated": "sales",
                  "order.submitted": "sales", "order.fulfilled": "sales", "payment.received": "sales",
                  "payment.overdue": "sales", "csat.submitted": "service-desk", "referral.spotted": "service-desk"})
PRODUCERS.update({t: "service-desk" for t in CONSUMERS if t.startswith("ticket.")})

SERVICES = ("leads", "sales", "service-desk", "notify")


def bindings_for(service: str) -> list[str]:
    """The event types a service's queue is bound to."""
    return sorted(t for t, consumers in CONSUMERS.items() if service in consumers)
