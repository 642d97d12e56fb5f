"""marshmallow schemas of the sales API. Money travels as a JSON string ("1234.50"): a JSON number
is refused with 422, because a JSON parser turns it into a binary float (0.1 is not 0.1) before we
could see it."""
from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_shared.fields import Int, Money, Text

from .domain.pipeline import STAGES


class ExactMoney(Money):
    """A Decimal given as a JSON string (or an integer); floats are refused."""

    def __init__(self, *args, **kw):
        kw.setdefault("metadata", {}).setdefault("description", "A decimal number as a string, e.g. \"1234.50\".")
        super().__init__(*args, **kw)

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool) or isinstance(value, float):
            raise ValidationError("Send money and percentages as a string (\"0.10\"), not as a JSON number.")
        if not isinstance(value, (str, int)):
            raise ValidationError("Not a valid number.")
        if isinstance(value, str) and (len(value) > 40 or not value.strip()):
            raise ValidationError("Not a valid number.")
        result = super()._deserialize(value, attr, data, **kw)
        if not result.is_finite():
            raise ValidationError("Not a finite number.")
        return result


class UtcDateTime(fields.DateTime):
    """An instant in ISO 8601 with its offset; SQLite hands back naive values, which are UTC."""

    def _serialize(self, value, attr, obj, **kw):
        from datetime import timezone
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kw)


Currency = lambda **kw: Text(min_length=3, max_length=3, validate=validate.Regexp(r"^[A-Z]{3}$"), **kw)  # noqa: E731
Id = lambda **kw: Int(strict=True, validate=validate.Range(1, 2**31 - 1), **kw)  # noqa: E731


class ContactSchema(Schema):
    name = Text(max_length=200, allow_none=True)
    phone = Text(max_length=50, allow_none=True)
    email = Text(max_length=254, allow_none=True)
    title = Text(max_length=100, allow_none=True)


class CustomerIn(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    company = Text(max_length=200, allow_none=True)
    phone = Text(max_length=50, allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    province = Text(max_length=100, allow_none=True)
    city = Text(max_length=100, allow_none=True)
    industry = Text(max_length=100, allow_none=True)
    birthday = fields.Date(allow_none=True)
    language = Text(max_length=20, allow_none=True)
    owner_id = Text(max_length=64, allow_none=True)
    contacts = fields.List(fields.Nested(ContactSchema), load_default=list, validate=validate.Length(max=50))


class CustomerPatch(Schema):
    name = Text(min_length=1, max_length=200)
    company = Text(max_length=200, allow_none=True)
    phone = Text(max_length=50, allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    province = Text(max_length=100, allow_none=True)
    city = Text(max_length=100, allow_none=True)
    industry = Text(max_length=100, allow_none=True)
    birthday = fields.Date(allow_none=True)
    language = Text(max_length=20, allow_none=True)
    owner_id = Text(max_length=64)
    team_id = Text(max_length=64, allow_none=True)
    churn_risk = fields.Boolean(validate=validate.Equal(False), metadata={"description": "Only clearing is allowed."})


class CustomerOut(Schema):
    id = Int()
    name = fields.String()
    company = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    source = fields.String()
    province = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    birthday = fields.Date(allow_none=True)
    language = fields.String(allow_none=True)
    tier = fields.String()
    churn_risk = fields.Boolean()
    churn_reason = fields.String(allow_none=True)
    open_tickets = Int(metadata={"description": "service-desk tickets still open (health)"})
    open_complaints = Int()
    revision = Int()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    contacts = fields.List(fields.Nested(ContactSchema))


class CustomerQuery(Schema):
    owner = Text(max_length=64)
    tier = Text(validate=validate.OneOf(["gold", "silver", "bronze", "prospect"]))
    churn_risk = fields.Boolean()
    email_domain = Text(max_length=254, metadata={"description": "customers whose email is at this domain"})
    q = Text(max_length=100)
    limit = Int(load_default=100, validate=validate.Range(1, 500))
    offset = Int(load_default=0, validate=validate.Range(0, 10**9))


class OpportunityOut(Schema):
    id = Int()
    customer_id = Int()
    lead_id = fields.String(allow_none=True)
    name = fields.String()
    expected_amount = Money()
    currency = fields.String()
    stage = fields.String()
    probability = Money()
    owner_id = fields.String()
    team_id = fields.String(allow_none=True)
    lost_reason = fields.String(allow_none=True)
    expected_close = fields.Date(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class OpportunityIn(Schema):
    customer_id = Id(required=True)
    name = Text(required=True, min_length=1, max_length=200)
    expected_amount = ExactMoney(required=True)
    currency = Currency(required=True)
    expected_close = fields.Date(allow_none=True)


class OpportunityPatch(Schema):
    stage = fields.String(validate=validate.OneOf(STAGES))
    lost_reason = Text(max_length=500, allow_none=True)
    name = Text(min_length=1, max_length=200)
    expected_amount = ExactMoney()
    currency = Currency()
    expected_close = fields.Date(allow_none=True)


class OpportunityQuery(Schema):
    customer_id = Int()
    lead_id = Text(max_length=64)
    stage = fields.String(validate=validate.OneOf(STAGES))
    owner = Text(max_length=64)
    limit = Int(load_default=100, validate=validate.Range(1, 500))
    offset = Int(load_default=0, validate=validate.Range(0, 10**9))


class ProductIn(Schema):
    sku = Text(required=True, min_length=1, max_length=64)
    name = Text(required=True, min_length=1, max_length=200)
    list_price = ExactMoney(required=True)
    currency = Currency(required=True)
    active = fields.Boolean(load_default=True)


class ProductPatch(Schema):
    name = Text(min_length=1, max_length=200)
    list_price = ExactMoney()
    active = fields.Boolean()


class ProductOut(Schema):
    id = Int()
    sku = fields.String()
    name = fields.String()
    list_price = Money()
    currency = fields.String()
    active = fields.Boolean()


class QuoteLineIn(Schema):
    sku = Text(required=True, min_length=1, max_length=64)
    quantity = ExactMoney(required=True, validate=validate.Range(min=Decimal("0.0001"), max=Decimal("1e9")))
    discount_pct = ExactMoney(load_default=Decimal(0), validate=validate.Range(min=Decimal(0), max=Decimal(100)))
    unit_price = ExactMoney(allow_none=True, validate=validate.Range(min=Decimal(0)))

    @validates_schema
    def _places(self, data, **kw):
        if data["quantity"].as_tuple().exponent < -4:
            raise ValidationError("At most 4 decimal places.", "quantity")
        if data.get("discount_pct") is not None and data["discount_pct"].as_tuple().exponent < -4:
            raise ValidationError("At most 4 decimal places.", "discount_pct")


class QuoteIn(Schema):
    opportunity_id = Id(required=True)
    currency = Currency(required=True)
    lines = fields.List(fields.Nested(QuoteLineIn), required=True, validate=validate.Length(min=1, max=200))


class QuotePatch(Schema):
    currency = Currency()
    lines = fields.List(fields.Nested(QuoteLineIn), validate=validate.Length(min=1, max=200))


class QuoteLineOut(Schema):
    seq = Int()
    sku = fields.String()
    name = fields.String()
    quantity = Money()
    unit_price = Money()
    discount_pct = Money()
    gross = Money()
    discount = Money()
    net = Money()


class StepOut(Schema):
    id = Int()
    seq = Int()
    role = fields.String(allow_none=True)
    users = fields.List(fields.String())
    mode = fields.String()
    team = fields.String(allow_none=True)
    status = fields.String()
    started_at = UtcDateTime(allow_none=True)
    decided_at = UtcDateTime(allow_none=True)
    escalations = Int()


class TrailOut(Schema):
    step = Int(allow_none=True)
    actor_id = fields.String()
    action = fields.String()
    comment = fields.String(allow_none=True)
    at = UtcDateTime()


class ApprovalOut(Schema):
    id = Int()
    subject_type = fields.String()
    subject_id = Int()
    requester_id = fields.String()
    requester_team = fields.String(allow_none=True)
    status = fields.String()
    current_step = Int()
    amount = Money(allow_none=True)
    currency = fields.String(allow_none=True)
    max_discount_pct = Money(allow_none=True)
    created_at = UtcDateTime()
    decided_at = UtcDateTime(allow_none=True)
    steps = fields.List(fields.Nested(StepOut))
    trail = fields.List(fields.Nested(TrailOut))


class QuoteOut(Schema):
    id = Int()
    opportunity_id = Int()
    customer_id = Int()
    owner_id = fields.String()
    team_id = fields.String(allow_none=True)
    currency = fields.String()
    status = fields.String()
    revision = Int()
    previous_id = Int(allow_none=True)
    subtotal = Money()
    discount_amount = Money()
    total = Money()
    max_discount_pct = Money()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    lines = fields.List(fields.Nested(QuoteLineOut))
    approvals = fields.List(fields.Nested(ApprovalOut))


class QuoteQuery(Schema):
    opportunity_id = Int()
    status = fields.String()
    limit = Int(load_default=100, validate=validate.Range(1, 500))
    offset = Int(load_default=0, validate=validate.Range(0, 10**9))


class PolicyStep(Schema):
    role = fields.String(allow_none=True, validate=validate.OneOf(["sales_manager", "general_manager", "finance",
                                                                  "admin"]))
    users = fields.List(Text(min_length=1, max_length=64), load_default=list, validate=validate.Length(max=50))
    mode = fields.String(load_default="any", validate=validate.OneOf(["any", "all"]),
                         metadata={"description": "any: one of them (或签); all: every one of them (会签)"})


class Policy(Schema):
    subject_type = fields.String(required=True, validate=validate.OneOf(["quote", "contract"]))
    threshold = ExactMoney(required=True, validate=validate.Range(min=Decimal(0)), metadata={
        "description": "quote: maximum line discount in percent; contract: amount in the base currency. "
                       "The policy applies to values strictly over it; the highest matching threshold wins."})
    steps = fields.List(fields.Nested(PolicyStep), required=True, validate=validate.Length(min=1, max=10))
    remind_after_hours = Int(load_default=24, validate=validate.Range(1, 24 * 90))
    escalate_after_hours = Int(load_default=48, validate=validate.Range(1, 24 * 90))


class PolicySet(Schema):
    policies = fields.List(fields.Nested(Policy), required=True, validate=validate.Length(max=50))


class ApprovalQuery(Schema):
    status = fields.String(load_default="pending", validate=validate.OneOf(
        ["pending", "approved", "rejected", "returned", "withdrawn"]))


class DecisionIn(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject", "return"]))
    comment = Text(max_length=2000, allow_none=True)
    step = Int(strict=True, metadata={"description": "The step being decided; 409 if it has moved on."})


class CommentIn(Schema):
    comment = Text(max_length=2000, allow_none=True)


class DecisionOut(Schema):
    status = fields.String()
    step = Int()
    final = fields.Boolean()


class InstallmentIn(Schema):
    due_date = fields.Date(required=True)
    amount = ExactMoney(required=True)


class ContractIn(Schema):
    quote_id = Id(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    payment_plan = fields.List(fields.Nested(InstallmentIn), required=True, validate=validate.Length(min=1, max=120))


class InstallmentOut(Schema):
    id = Int()
    seq = Int()
    due_date = fields.Date()
    amount = Money()
    paid = Money()
    outstanding = Money()
    overdue_level = Int()


class ContractOut(Schema):
    id = Int()
    quote_id = Int()
    customer_id = Int()
    opportunity_id = Int(allow_none=True)
    owner_id = fields.String()
    team_id = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    amount = Money()
    currency = fields.String()
    status = fields.String()
    start_date = fields.Date()
    end_date = fields.Date()
    signed_on = fields.Date(allow_none=True)
    predecessor_id = Int(allow_none=True)
    successor_id = Int(allow_none=True)
    reason = fields.String(allow_none=True)
    outstanding = Money()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    payment_plan = fields.List(fields.Nested(InstallmentOut))
    approvals = fields.List(fields.Nested(ApprovalOut))


class ContractQuery(Schema):
    customer_id = Int()
    status = fields.String()
    limit = Int(load_default=100, validate=validate.Range(1, 500))
    offset = Int(load_default=0, validate=validate.Range(0, 10**9))


class SignIn(Schema):
    signed_on = fields.Date(required=True)


class RenewIn(Schema):
    start_date = fields.Date()
    end_date = fields.Date()


class ReasonIn(Schema):
    reason = Text(required=True, min_length=1, max_length=500)


class NoteIn(Schema):
    note = Text(required=True, min_length=1, max_length=2000)


class PaymentIn(Schema):
    amount = ExactMoney(required=True)
    paid_on = fields.Date(required=True)
    reference = Text(required=True, min_length=1, max_length=100)


class AllocationOut(Schema):
    installment_id = Int()
    amount = Money()


class PaymentOut(Schema):
    id = Int()
    contract_id = Int()
    amount = Money()
    currency = fields.String()
    paid_on = fields.Date()
    reference = fields.String()
    allocations = fields.List(fields.Nested(AllocationOut))


class ProductLine(Schema):
    sku = fields.String()
    name = fields.String(allow_none=True)
    quantity = fields.String()


class OrderOut(Schema):
    id = Int()
    contract_id = Int()
    customer_id = Int()
    owner_id = fields.String()
    team_id = fields.String(allow_none=True)
    status = fields.String()
    products = fields.List(fields.Nested(ProductLine))
    note = fields.String(allow_none=True)
    handled_by = fields.String(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class OrderQuery(Schema):
    status = fields.String(validate=validate.OneOf(["submitted", "in_progress", "fulfilled", "rejected"]))
    limit = Int(load_default=100, validate=validate.Range(1, 500))
    offset = Int(load_default=0, validate=validate.Range(0, 10**9))


class RatesIn(Schema):
    rates = fields.Dict(keys=Currency(), values=ExactMoney(validate=validate.Range(min=Decimal("0.0000000001"))),
                        required=True, metadata={"description": "units of the base currency (CNY) per unit"})


class RatesOut(Schema):
    base_currency = fields.String()
    rates = fields.Dict(keys=fields.String(), values=Money())


class PeriodQuery(Schema):
    since = fields.Date()
    until = fields.Date()
    owner = Text(max_length=64)
    team = Text(max_length=64)


# Reports are documents assembled by the domain; their numbers are strings (Decimal), never floats.
class ReportOut(Schema):
    class Meta:
        unknown = "include"
