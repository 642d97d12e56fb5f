"""marshmallow schemas of the notify API. Every string is a length-limited `Text`."""
from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from crm_shared.events import REGISTRY
from crm_shared.fields import Int, Text, UtcDateTime

from .domain.defaults import TEMPLATE_KEYS
from .domain.rules import LANGUAGES, valid_zone

CHANNELS = ("inbox", "email", "sms")
WEBHOOK_KINDS = ("webhook", "wecom", "dingtalk", "feishu")
RECIPIENT_KINDS = ("field", "role", "team_manager", "customer", "user", "approvers")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def known_event_types() -> set[str]:
    from crm_shared.events.catalogue import bindings_for
    return set(bindings_for("notify")) | set(TEMPLATE_KEYS)


def _event_type(value):
    if value not in known_event_types():
        raise ValidationError("Not an event type this service handles (see the catalogue) nor a schedule key.")


def _check_condition(condition) -> None:
    for field, tests in (condition or {}).items():
        bad = [op for op in tests if op not in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "present")]
        if bad:
            raise ValidationError(f"Unknown operator(s) {bad} for {field}.", "condition")


class _Out(Schema):
    class Meta:
        ordered = True


# -- subscriptions -----------------------------------------------------------------------------------

class SubscriptionIn(Schema):
    event_type = Text(required=True, max_length=100, validate=_event_type)
    recipient_kind = Text(required=True, validate=validate.OneOf(RECIPIENT_KINDS),
                          metadata={"description": "field: a user id field of the payload (owner_id, approver_ids...); "
                                                   "role: every user with the role; team_manager: the managers of the "
                                                   "payload's team; customer: the payload's customer; user: one user; approvers: "
                                                   "an approval step's named approvers, else the holders of its role "
                                                   "(of its team, for a team-scoped role)"})
    recipient_value = Text(load_default=None, allow_none=True, max_length=100)
    channels = fields.List(Text(validate=validate.OneOf(CHANNELS)), required=True, validate=validate.Length(1, 3))
    template = Text(load_default=None, allow_none=True, max_length=100)
    condition = fields.Dict(keys=Text(max_length=64), values=fields.Dict(), load_default=None, allow_none=True,
                            metadata={"description": 'e.g. {"days_overdue": {"gte": 30}}; ops eq ne gt gte lt lte in present'})
    critical = fields.Boolean(load_default=False)

    @validates_schema
    def _check(self, data, **kw):
        kind, value = data["recipient_kind"], data.get("recipient_value")
        if kind in ("field", "role", "user") and not value:
            raise ValidationError("Required for this recipient_kind.", "recipient_value")
        if kind == "field" and value:
            schema = REGISTRY.schema(data["event_type"], REGISTRY.latest(data["event_type"])) \
                if data["event_type"] in REGISTRY.types() else None
            if schema is not None and value not in schema._declared_fields:
                raise ValidationError(f"{data['event_type']} has no field {value}.", "recipient_value")
        if data.get("template") and data["template"] not in TEMPLATE_KEYS and data["template"] not in known_event_types():
            raise ValidationError("Unknown template key.", "template")
        _check_condition(data.get("condition"))


class SubscriptionOut(_Out):
    id = fields.String()
    event_type = fields.String()
    recipient_kind = fields.String()
    recipient_value = fields.String(allow_none=True)
    channels = fields.List(fields.String())
    template = fields.String()
    condition = fields.Dict(allow_none=True)
    critical = fields.Boolean()
    default = fields.Boolean()
    enabled = fields.Boolean()


class SubscriptionQuery(Schema):
    event_type = Text(load_default=None, max_length=100)


# -- recipients and preferences ------------------------------------------------------------------------

def _zone(value):
    if not valid_zone(value):
        raise ValidationError("Not an IANA time zone (e.g. Asia/Shanghai).")


class RecipientIn(Schema):
    name = Text(load_default=None, allow_none=True, max_length=200)
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=320))
    mobile = Text(load_default=None, allow_none=True, max_length=40, validate=validate.Regexp(r"^\+?[0-9]{6,20}$"))
    language = Text(load_default="zh-CN", validate=validate.OneOf(LANGUAGES))
    timezone = Text(load_default="Asia/Shanghai", max_length=64, validate=_zone)
    roles = fields.List(Text(max_length=40), load_default=list)
    team_id = Text(load_default=None, allow_none=True, max_length=64)


class RecipientOut(_Out):
    id = fields.String()
    kind = fields.String()
    name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    language = fields.String()
    timezone = fields.String()
    roles = fields.List(fields.String())
    team_id = fields.String(allow_none=True)
    birthday = fields.Date(allow_none=True)
    birthday_greetings = fields.Boolean()
    holiday_greetings = fields.Boolean()


MAX_PEOPLE_IDS = 100


class PeopleQuery(Schema):
    id = fields.List(Text(min_length=1, max_length=100), load_default=list,
                     validate=validate.Length(max=MAX_PEOPLE_IDS, error=f"At most {MAX_PEOPLE_IDS} ids at once."),
                     metadata={"description": "these users only (repeat: ?id=a&id=b); unknown ids are left out"})
    team_id = Text(load_default=None, max_length=64, metadata={"description": "only this team's members"})
    role = Text(load_default=None, max_length=40, metadata={"description": "only holders of this role"})
    after = Text(load_default=None, max_length=100, metadata={"description": "page: users whose id sorts after this"})
    limit = Int(load_default=200, validate=validate.Range(1, 500))


class PersonOut(_Out):
    """What any colleague may know of a user: no contact data."""
    id = fields.String()
    name = fields.String(allow_none=True)
    roles = fields.List(fields.String())
    team_id = fields.String(allow_none=True)


class CareIn(Schema):
    birthday_greetings = fields.Boolean(load_default=None, allow_none=True)
    holiday_greetings = fields.Boolean(load_default=None, allow_none=True)


class QuietHours(Schema):
    start = Text(required=True, validate=validate.Regexp(HHMM, error="Use HH:MM."))
    end = Text(required=True, validate=validate.Regexp(HHMM, error="Use HH:MM."))


class PreferencesIn(Schema):
    language = Text(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES))
    quiet_hours = fields.Nested(QuietHours, load_default=None, allow_none=True,
                                metadata={"description": "no SMS in these local hours (held until they end); "
                                                         "null = the default 22:00-08:00; equal start and end = none"})
    channels = fields.Dict(keys=Text(max_length=100, validate=_event_type),
                           values=fields.List(Text(validate=validate.OneOf(CHANNELS))), load_default=dict)
    digest = fields.Dict(keys=Text(max_length=100, validate=_event_type),
                         values=Text(validate=validate.OneOf(("hourly", "daily"))), load_default=dict)


class PreferencesOut(_Out):
    language = fields.String(allow_none=True)
    quiet_hours = fields.Nested(QuietHours)
    channels = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    digest = fields.Dict(keys=fields.String(), values=fields.String())
    critical = fields.List(fields.Dict(), metadata={"description": "subscriptions that preferences cannot turn off"})


# -- templates ----------------------------------------------------------------------------------------

class TemplateIn(Schema):
    event_type = Text(required=True, max_length=100, validate=_event_type)
    channel = Text(required=True, validate=validate.OneOf(CHANNELS + WEBHOOK_KINDS + ("*",)))
    language = Text(required=True, validate=validate.OneOf(LANGUAGES))
    subject = Text(required=True, min_length=1, max_length=500)
    body = Text(required=True, min_length=1, max_length=10_000, strip=False)
    sms_rule = Text(load_default="split", validate=validate.OneOf(("split", "trim")))


class TemplateOut(_Out):
    id = fields.String()
    event_type = fields.String()
    channel = fields.String()
    language = fields.String()
    subject = fields.String()
    body = fields.String()
    sms_rule = fields.String()
    default = fields.Boolean()


class PreviewIn(Schema):
    payload = fields.Dict(required=True)


class PreviewOut(_Out):
    subject = fields.String()
    text = fields.String()
    html = fields.String()
    sms_parts = fields.List(fields.String())


# -- webhooks -----------------------------------------------------------------------------------------

class WebhookIn(Schema):
    url = Text(required=True, max_length=2000)
    event_types = fields.List(Text(max_length=100), required=True, validate=validate.Length(1, 100))
    secret = Text(load_default=None, allow_none=True, max_length=200)
    kind = Text(load_default="webhook", validate=validate.OneOf(WEBHOOK_KINDS))
    language = Text(load_default="zh-CN", validate=validate.OneOf(LANGUAGES))
    condition = fields.Dict(keys=Text(max_length=64), values=fields.Dict(), load_default=None, allow_none=True,
                            metadata={"description": 'only events whose payload matches, e.g. pool leads of one team: '
                                                     '{"owner_id": {"present": false}, "team_id": {"eq": "east"}}'})

    @validates("event_types")
    def _types(self, value, **kw):
        known = known_event_types()
        bad = [t for t in value if t != "*" and t not in known]
        if bad:
            raise ValidationError(f"Unknown event types: {', '.join(bad)}.")

    @validates_schema
    def _secret(self, data, **kw):
        if data.get("kind", "webhook") == "webhook" and not data.get("secret"):
            raise ValidationError("A webhook needs a secret to sign with (at least 16 characters).", "secret")
        if data.get("kind", "webhook") == "webhook" and len(data["secret"]) < 16:
            raise ValidationError("At least 16 characters.", "secret")
        _check_condition(data.get("condition"))


class WebhookOut(_Out):
    id = fields.String()
    owner_id = fields.String()
    kind = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    condition = fields.Dict(allow_none=True)
    language = fields.String()
    enabled = fields.Boolean()
    consecutive_failures = Int()
    disabled_at = UtcDateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    created_at = UtcDateTime()


# -- inbox ----------------------------------------------------------------------------------------------

class InboxQuery(Schema):
    unread = fields.Boolean(load_default=False)
    topic = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[a-z_]{1,40}$"),
                          metadata={"description": "only items about this: lead, ticket, approval, reminder ..."})
    limit = Int(load_default=50, validate=validate.Range(1, 200))
    before_id = Int(load_default=None, allow_none=True, metadata={"description": "page: items older than this id"})


class InboxItemOut(_Out):
    id = fields.String()
    event_type = fields.String()
    event_id = fields.String()
    topic = fields.String(metadata={"description": "the event type's first word: lead, ticket, approval ..."})
    title = fields.String()
    body = fields.String()
    refs = fields.Dict(metadata={"description": "ids of what the item is about (lead_id, ticket_id...)"})
    created_at = UtcDateTime()
    read_at = UtcDateTime(allow_none=True)
    read = fields.Boolean()


class InboxPage(_Out):
    items = fields.List(fields.Nested(InboxItemOut))
    unread = Int()


class UnreadCount(_Out):
    unread = Int()


class ReadAllOut(_Out):
    marked = Int()


# -- deliveries ---------------------------------------------------------------------------------------

class DeliveryQuery(Schema):
    event_id = Text(load_default=None, max_length=80)
    recipient = Text(load_default=None, max_length=100)
    channel = Text(load_default=None, max_length=20)
    status = Text(load_default=None, validate=validate.OneOf(
        ("pending", "sending", "sent", "failed", "cancelled", "digest", "digested")))
    limit = Int(load_default=100, validate=validate.Range(1, 500))


class AttemptOut(_Out):
    attempt = Int()
    at = UtcDateTime()
    ok = fields.Boolean()
    error = fields.String(allow_none=True)
    duration_ms = Int()


class DeliveryOut(_Out):
    id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    recipient = fields.String()
    channel = fields.String()
    kind = fields.String()
    critical = fields.Boolean()
    status = fields.String()
    language = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    due_at = UtcDateTime()
    attempts = Int()
    last_error = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    created_at = UtcDateTime()
    last_attempt_at = UtcDateTime(allow_none=True)
    sent_at = UtcDateTime(allow_none=True)
    digest_id = fields.String(allow_none=True)
    tries = fields.List(fields.Nested(AttemptOut))
