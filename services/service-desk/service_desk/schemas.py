"""marshmallow schemas of the service-desk API."""
from marshmallow import Schema, fields, validate, validates_schema, ValidationError

from crm_shared.fields import Int, Text

from .domain.common import CHANNELS, PRIORITIES, QUEUES, TYPES
from .domain.reports import GROUPS

HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", error="Use HH:MM.")


class ContactIn(Schema):
    name = Text(max_length=200, allow_none=True)
    phone = Text(max_length=50, allow_none=True)
    email = Text(max_length=300, allow_none=True)


class TicketIn(Schema):
    customer_id = Text(required=True, min_length=1, max_length=64)
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    subject = Text(required=True, min_length=1, max_length=300)
    description = Text(load_default="", max_length=10000)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    contact = fields.Nested(ContactIn, allow_none=True, load_default=None)


class TicketQuery(Schema):
    status = fields.String(validate=validate.OneOf(("new", "open", "pending", "resolved", "closed")))
    type = fields.String(validate=validate.OneOf(TYPES))
    queue = fields.String(validate=validate.OneOf(QUEUES))
    assignee = Text(max_length=64, metadata={"description": "a user id, or `me`"})
    customer_id = Text(max_length=64)
    breached = fields.Boolean()
    limit = Int(load_default=50, validate=validate.Range(1, 200))
    offset = Int(load_default=0, validate=validate.Range(0, 1_000_000))


class SlaTimerOut(Schema):
    cycle = Int()
    target = fields.String()
    minutes = Int(metadata={"description": "business minutes allowed"})
    warn_at = fields.DateTime()
    due_at = fields.DateTime()
    paused = fields.Boolean()
    remaining_minutes = fields.Float(allow_none=True)
    met_at = fields.DateTime(allow_none=True)
    warned_at = fields.DateTime(allow_none=True)
    breached_at = fields.DateTime(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)


class TicketOut(Schema):
    id = Int()
    customer_id = fields.String()
    type = fields.String()
    priority = fields.String()
    queue = fields.String()
    status = fields.String()
    subject = fields.String()
    description = fields.String()
    channel = fields.String()
    contact = fields.Dict(allow_none=True)
    tier = fields.String(allow_none=True)
    assignee_id = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    assigned_at = fields.DateTime(allow_none=True)
    first_response_at = fields.DateTime(allow_none=True)
    pending_since = fields.DateTime(allow_none=True)
    held_seconds = fields.Float(metadata={"description": "total time spent in pending (SLA paused)"})
    resolved_at = fields.DateTime(allow_none=True)
    resolution_seconds = fields.Float(allow_none=True, metadata={
        "description": "time to resolve, pending time excluded; null while not resolved"})
    closed_at = fields.DateTime(allow_none=True)
    escalated_to = fields.String(allow_none=True)
    auto_reply = fields.String(allow_none=True)
    breached = fields.Boolean()
    sla = fields.Dict(keys=fields.String(), values=fields.Nested(SlaTimerOut))


class ContractOut(Schema):
    contract_id = fields.String()
    status = fields.String()
    start_date = fields.Date(allow_none=True)
    end_date = fields.Date(allow_none=True)
    amount = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)


class PastTicketOut(Schema):
    id = Int()
    subject = fields.String()
    type = fields.String()
    status = fields.String()
    created_at = fields.DateTime()


class CustomerOut(Schema):
    customer_id = fields.String()
    known = fields.Boolean(metadata={"description": "false until sales' customer events have arrived"})
    name = fields.String(allow_none=True)
    tier = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    active_contracts = fields.List(fields.Nested(ContractOut))
    past_tickets = fields.List(fields.Nested(PastTicketOut))


class CommentOut(Schema):
    id = Int()
    author_id = fields.String(allow_none=True)
    body = fields.String()
    public = fields.Boolean()
    from_customer = fields.Boolean()
    automatic = fields.Boolean()
    created_at = fields.DateTime()


class HistoryOut(Schema):
    at = fields.DateTime()
    kind = fields.String()
    actor_id = fields.String(allow_none=True)
    data = fields.Dict()


class TicketDetailOut(TicketOut):
    customer = fields.Nested(CustomerOut)
    comments = fields.List(fields.Nested(CommentOut))
    timeline = fields.List(fields.Nested(HistoryOut))


class CommentIn(Schema):
    body = Text(required=True, min_length=1, max_length=10000)
    public = fields.Boolean(load_default=False, metadata={"description": "a reply the customer sees"})
    from_customer = fields.Boolean(load_default=False,
                                   metadata={"description": "the customer's own message, logged by staff"})


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("open", "pending", "resolved", "closed")),
                           metadata={"description": "open from pending resumes, from resolved/closed reopens"})
    note = Text(max_length=2000, allow_none=True, load_default=None)


class AssignmentIn(Schema):
    assignee_id = Text(required=True, min_length=1, max_length=64)


class ReferralIn(Schema):
    note = Text(required=True, min_length=1, max_length=2000)
    customer_name = Text(max_length=200, allow_none=True, load_default=None)
    phone = Text(max_length=50, allow_none=True, load_default=None)
    email = Text(max_length=300, allow_none=True, load_default=None)


class ReferralOut(Schema):
    ticket_id = Int()
    customer_id = fields.String()
    owner_id = fields.String(allow_none=True)
    note = fields.String()


class AgentIn(Schema):
    user_id = Text(required=True, min_length=1, max_length=64)
    name = Text(max_length=200, allow_none=True, load_default=None)
    skills = fields.List(fields.String(validate=validate.OneOf(QUEUES)), required=True)
    max_open = Int(load_default=10, validate=validate.Range(0, 1000))
    active = fields.Boolean(load_default=True)


class AgentPatch(Schema):
    name = Text(max_length=200, allow_none=True)
    skills = fields.List(fields.String(validate=validate.OneOf(QUEUES)))
    max_open = Int(validate=validate.Range(0, 1000))
    active = fields.Boolean()


class AgentOut(Schema):
    user_id = fields.String()
    name = fields.String(allow_none=True)
    skills = fields.List(fields.String())
    max_open = Int()
    open_count = Int()
    active = fields.Boolean()


class QueueIn(Schema):
    supervisor_id = Text(max_length=64, allow_none=True, required=True)


class QueueOut(Schema):
    name = fields.String()
    supervisor_id = fields.String(allow_none=True)
    waiting = Int()
    open = Int()
    agents = Int()


class SlaPolicyIn(Schema):
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    tier = Text(load_default="*", min_length=1, max_length=30,
                metadata={"description": "a customer tier, or * for every tier without its own policy"})
    first_response_minutes = Int(required=True, validate=validate.Range(1, 525600))
    next_response_minutes = Int(validate=validate.Range(1, 525600))
    resolution_minutes = Int(required=True, validate=validate.Range(1, 525600))


class SlaPolicyOut(Schema):
    id = Int()
    priority = fields.String()
    tier = fields.String()
    first_response_minutes = Int()
    next_response_minutes = Int()
    resolution_minutes = Int()


class CalendarIn(Schema):
    timezone = Text(load_default="Asia/Shanghai", max_length=60)
    hours = fields.Dict(keys=fields.String(validate=validate.OneOf([str(i) for i in range(7)])),
                        values=fields.List(fields.String(validate=HHMM), validate=validate.Length(equal=2)),
                        load_default=None, allow_none=True,
                        metadata={"description": "weekday (0=Monday) -> [start, end]; missing days are closed"})
    chinese_holidays = fields.Boolean(load_default=True)
    closed_days = fields.List(fields.Date(), load_default=list)
    makeup_days = fields.List(fields.Date(), load_default=list,
                              metadata={"description": "extra workdays, e.g. make-up days of a year the "
                                                       "holiday data does not cover yet"})

    @validates_schema
    def _check(self, data, **kw):
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(data["timezone"])
        except Exception:
            raise ValidationError("Unknown time zone.", "timezone")
        for day, span in (data.get("hours") or {}).items():
            if span[0] >= span[1]:
                raise ValidationError({day: ["The start must be before the end."]}, "hours")


class CalendarOut(Schema):
    timezone = fields.String()
    hours = fields.Dict()
    chinese_holidays = fields.Boolean()
    closed_days = fields.List(fields.String())
    makeup_days = fields.List(fields.String())


class CsatIn(Schema):
    score = Int(required=True, strict=True, validate=validate.Range(1, 5))
    comment = Text(max_length=2000, allow_none=True, load_default=None)


class CsatOut(Schema):
    ticket_id = Int()
    score = Int()
    comment = fields.String(allow_none=True)
    submitted_at = fields.DateTime()


class CsatSurveyOut(Schema):
    ticket_id = Int()
    subject = fields.String()
    expires_at = fields.DateTime()
    answered = fields.Boolean()
    expired = fields.Boolean()


class ReportQuery(Schema):
    group_by = fields.String(load_default="queue", validate=validate.OneOf(GROUPS))
    start = fields.Date(load_default=None, data_key="from")
    end = fields.Date(load_default=None, data_key="to", metadata={"description": "exclusive"})


class SlaReportRow(Schema):
    key = fields.String()
    total = Int()
    within = Int()
    breached = Int()
    running = Int()
    within_share = fields.Float(allow_none=True)


class SlaReportOut(Schema):
    group_by = fields.String()
    rows = fields.List(fields.Nested(SlaReportRow))


class CsatReportRow(Schema):
    key = fields.String()
    requested = Int()
    answered = Int()
    response_rate = fields.Float(allow_none=True)
    average = fields.Float(allow_none=True)
    distribution = fields.Dict(keys=fields.String(), values=Int())


class CsatReportOut(Schema):
    group_by = fields.String()
    groups = fields.List(fields.Nested(CsatReportRow))
