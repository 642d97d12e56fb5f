"""marshmallow schemas of the leads API."""
from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, fields, validate

from crm_shared.fields import Int, Money, Text

from .domain.intake import SOURCES
from .domain.lifecycle import CHANNELS
from .domain.routing import STRATEGIES

Source = lambda **kw: Text(max_length=20, validate=validate.OneOf(SOURCES), **kw)  # noqa: E731


class Aware(fields.DateTime):
    """Datetimes out as UTC ISO 8601 with offset (SQLite gives them back naive)."""

    def _serialize(self, value, attr, obj, **kw):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kw)


class Id(fields.Field):
    """Ids as strings (they are opaque to clients)."""

    def _serialize(self, value, attr, obj, **kw):
        return None if value is None else str(value)


class PageQuery(Schema):
    page = Int(load_default=1, validate=validate.Range(min=1))
    per_page = Int(load_default=50, validate=validate.Range(min=1, max=500))


class LeadIn(Schema):
    name = Text(max_length=200, allow_none=True)
    company = Text(max_length=300, allow_none=True)
    phone = Text(max_length=40, allow_none=True)
    email = Text(max_length=320, allow_none=True)
    province = Text(max_length=50, allow_none=True)
    city = Text(max_length=50, allow_none=True)
    industry = Text(max_length=100, allow_none=True)
    source = Source(load_default="other")
    campaign_id = Int(allow_none=True, strict=True)
    referrer_customer_id = Text(max_length=64, allow_none=True)
    note = Text(max_length=5000, allow_none=True)


class PublicLeadIn(LeadIn):
    class Meta:
        exclude = ("source", "campaign_id")


class LeadPatch(Schema):
    name = Text(max_length=200, allow_none=True)
    company = Text(max_length=300, allow_none=True)
    phone = Text(max_length=40, allow_none=True)
    email = Text(max_length=320, allow_none=True)
    province = Text(max_length=50, allow_none=True)
    city = Text(max_length=50, allow_none=True)
    industry = Text(max_length=100, allow_none=True)
    note = Text(max_length=5000, allow_none=True)


class LeadOut(Schema):
    id = Id()
    name = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    masked = fields.Boolean()
    province = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    source = fields.String()
    campaign_id = Id(allow_none=True)
    referrer_customer_id = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    tags = fields.String(allow_none=True)
    status = fields.String()
    disqualify_reason = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True)
    team_id = Id(allow_none=True)
    score = Int()
    tier = fields.String()
    locked = fields.Boolean()
    duplicate_hits = Int()
    customer_id = fields.String(allow_none=True)
    created_at = Aware()
    updated_at = Aware()
    assigned_at = Aware(allow_none=True)
    last_follow_up_at = Aware(allow_none=True)
    next_follow_up_at = Aware(allow_none=True)
    pooled_at = Aware(allow_none=True)
    converted_at = Aware(allow_none=True)
    won_at = Aware(allow_none=True)
    recycle_at = Aware(allow_none=True, metadata={
        "description": "when the lead goes back to the pool unless it is followed up, converted or locked "
                       "first (the team's pool policy); null when it is not owned, open and unlocked"})


class LeadQuery(PageQuery):
    status = Text(max_length=20)
    owner_id = Text(max_length=64)
    team_id = Int()
    source = Text(max_length=20)
    campaign_id = Int()
    tier = Text(max_length=1)
    province = Text(max_length=50)
    city = Text(max_length=50)
    industry = Text(max_length=100)
    email_domain = Text(max_length=255, metadata={"description": "leads whose email is at this domain, e.g. acme.com"})
    q = Text(max_length=100)


class LeadExportQuery(LeadQuery):
    class Meta:
        exclude = ("page", "per_page")


class PoolQuery(PageQuery):
    team_id = Int()
    source = Text(max_length=20)
    campaign_id = Int()
    tier = Text(max_length=1)
    province = Text(max_length=50)
    city = Text(max_length=50)
    industry = Text(max_length=100)
    tag = Text(max_length=50)


class LeadPage(Schema):
    items = fields.List(fields.Nested(LeadOut))
    total = Int()
    total_is_lower_bound = fields.Boolean(metadata={"description": "true when there are more than `total`"})
    page = Int()
    per_page = Int()


class AssignIn(Schema):
    user_id = Text(required=True, min_length=1, max_length=64)
    reason = Text(required=True, min_length=1, max_length=500)


class ReasonIn(Schema):
    reason = Text(required=True, min_length=1, max_length=500)


class OptionalReasonIn(Schema):
    reason = Text(load_default="released", max_length=500)


class StatusIn(Schema):
    status = Text(required=True, max_length=20, validate=validate.OneOf(["contacted", "qualified"]))


class FollowUpIn(Schema):
    channel = Text(required=True, max_length=20, validate=validate.OneOf(CHANNELS))
    note = Text(max_length=5000, allow_none=True)
    outcome = Text(max_length=200, allow_none=True)
    next_follow_up_at = fields.AwareDateTime(allow_none=True)


class FollowUpOut(Schema):
    id = Id()
    lead_id = Id()
    author_id = fields.String()
    channel = fields.String()
    note = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    next_follow_up_at = Aware(allow_none=True)
    created_at = Aware()


class FollowUpList(Schema):
    items = fields.List(fields.Nested(FollowUpOut))


class ConvertIn(Schema):
    opportunity_name = Text(required=True, min_length=1, max_length=200)
    expected_amount = Money(allow_none=True, validate=validate.Range(min=0))
    currency = Text(allow_none=True, max_length=3, validate=validate.Regexp(r"^[A-Z]{3}$"))


class HistoryOut(Schema):
    id = Id()
    at = Aware()
    kind = fields.String()
    actor_id = fields.String(allow_none=True)
    actor_name = fields.String(allow_none=True)
    from_owner_id = fields.String(allow_none=True)
    to_owner_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class HistoryList(Schema):
    items = fields.List(fields.Nested(HistoryOut))


class MemberIn(Schema):
    user_id = Text(required=True, min_length=1, max_length=64)
    name = Text(required=True, min_length=1, max_length=200)
    weight = Int(load_default=1, strict=True, validate=validate.Range(min=1, max=1000))
    max_open_leads = Int(allow_none=True, strict=True, validate=validate.Range(min=0))
    active = fields.Boolean(load_default=True)


class MemberPatch(Schema):
    name = Text(min_length=1, max_length=200)
    weight = Int(strict=True, validate=validate.Range(min=1, max=1000))
    max_open_leads = Int(allow_none=True, strict=True, validate=validate.Range(min=0))
    active = fields.Boolean()


class MemberOut(Schema):
    user_id = fields.String()
    name = fields.String()
    weight = Int()
    max_open_leads = Int(allow_none=True)
    active = fields.Boolean()
    assigned_count = Int()


class TeamIn(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    code = Text(max_length=64, allow_none=True, metadata={"description": "the `team` claim of its members' tokens"})
    strategy = Text(required=True, max_length=20, validate=validate.OneOf(STRATEGIES))
    members = fields.List(fields.Nested(MemberIn), load_default=list)


class TeamPatch(Schema):
    name = Text(min_length=1, max_length=200)
    code = Text(max_length=64, allow_none=True)
    strategy = Text(max_length=20, validate=validate.OneOf(STRATEGIES))


class TeamOut(Schema):
    id = Id()
    name = fields.String()
    code = fields.String(allow_none=True)
    strategy = fields.String()
    members = fields.List(fields.Nested(MemberOut))
    created_at = Aware()


class TeamList(Schema):
    items = fields.List(fields.Nested(TeamOut))


class Conditions(Schema):
    province = fields.List(Text(max_length=50))
    city = fields.List(Text(max_length=50))
    industry = fields.List(Text(max_length=100))
    source = fields.List(Source())
    campaign_id = fields.List(Int(strict=True))
    min_score = Int(strict=True, validate=validate.Range(min=0, max=100))


class RuleIn(Schema):
    priority = Int(required=True, strict=True)
    conditions = fields.Nested(Conditions, load_default=dict)
    team_id = Int(required=True, strict=True)
    active = fields.Boolean(load_default=True)


class RulePatch(Schema):
    priority = Int(strict=True)
    conditions = fields.Nested(Conditions)
    team_id = Int(strict=True)
    active = fields.Boolean()


class RuleOut(Schema):
    id = Id()
    priority = Int()
    conditions = fields.Dict()
    team_id = Id()
    active = fields.Boolean()
    created_at = Aware()


class RuleList(Schema):
    items = fields.List(fields.Nested(RuleOut))


class TierDays(Schema):
    no_follow_up = Int(strict=True, validate=validate.Range(min=1))
    no_conversion = Int(strict=True, validate=validate.Range(min=1))


class PolicyFields(Schema):
    recycle_no_follow_up_days = Int(strict=True, validate=validate.Range(min=1))
    recycle_no_conversion_days = Int(strict=True, validate=validate.Range(min=1))
    tier_days = fields.Dict(keys=fields.String(validate=validate.OneOf(["A", "B", "C", "D"])),
                            values=fields.Nested(TierDays))
    warn_days_before = Int(strict=True, validate=validate.Range(min=0))
    daily_claim_limit = Int(strict=True, validate=validate.Range(min=0))
    reclaim_cooldown_days = Int(strict=True, validate=validate.Range(min=0))
    new_entry_embargo_hours = Int(strict=True, validate=validate.Range(min=0))
    lock_quota = Int(strict=True, validate=validate.Range(min=0))


class PolicyQuery(Schema):
    team_id = Int(metadata={"description": "omit for the company default"})


class PolicyOut(PolicyFields):
    team_id = Id(allow_none=True)


class LookupQuery(Schema):
    phone = Text(max_length=40)
    email = Text(max_length=320)
    company = Text(max_length=300)
    city = Text(max_length=50)


class LookupMatch(Schema):
    kind = fields.String()
    matched_on = fields.String()
    state = fields.String()
    status = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class LookupOut(Schema):
    status = fields.String(metadata={"description": "unknown, pool, owned or customer"})
    matches = fields.List(fields.Nested(LookupMatch))


class CampaignIn(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    source = Source(required=True)
    budget = Money(allow_none=True, validate=validate.Range(min=0))
    currency = Text(required=True, max_length=3, validate=validate.Regexp(r"^[A-Z]{3}$"))
    starts_on = fields.Date(allow_none=True)
    ends_on = fields.Date(allow_none=True)


class CampaignOut(CampaignIn):
    id = Id()
    created_at = Aware()


class CampaignList(Schema):
    items = fields.List(fields.Nested(CampaignOut))


class CostIn(Schema):
    amount = Money(required=True)
    currency = Text(max_length=3, validate=validate.Regexp(r"^[A-Z]{3}$"))
    incurred_on = fields.Date(required=True)
    note = Text(max_length=500, allow_none=True)


class CostOut(CostIn):
    id = Id()
    campaign_id = Id()


class RoiOut(Schema):
    campaign_id = Id()
    name = fields.String()
    source = fields.String()
    currency = fields.String()
    budget = Money(allow_none=True)
    leads = Int()
    converted_leads = Int()
    won_contracts = Int()
    revenue = Money()
    cost = Money()
    cost_per_lead = Money(allow_none=True)
    roi = Money(allow_none=True, metadata={"description": "(revenue - cost) / cost"})
    revenue_other_currencies = fields.Dict(keys=fields.String(), values=fields.String())


class SourceReportRow(Schema):
    source = fields.String()
    leads = Int()
    converted_leads = Int()
    won_contracts = Int()
    revenue = fields.Dict(keys=fields.String(), values=fields.String())
    cost = fields.Dict(keys=fields.String(), values=fields.String())


class SourceReport(Schema):
    items = fields.List(fields.Nested(SourceReportRow))


class SourceIn(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    source = Source(required=True)
    campaign_id = Int(allow_none=True, strict=True)
    rate_per_minute = Int(load_default=60, strict=True, validate=validate.Range(min=1, max=100000))


class SourceOut(Schema):
    id = Id()
    name = fields.String()
    source = fields.String()
    campaign_id = Id(allow_none=True)
    rate_per_minute = Int()
    active = fields.Boolean()
    created_at = Aware()
    key = fields.String(metadata={"description": "shown once, when the source is created"})


class SourceList(Schema):
    items = fields.List(fields.Nested(SourceOut))


class IntakeAccepted(Schema):
    status = fields.String(metadata={"description": "always `received`: the form learns nothing of duplicates"})


class ImportForm(Schema):
    mapping = Text(max_length=5000, metadata={"description": 'JSON object {"CSV column": "lead field"}; '
                                                              "default: columns named like lead fields"})
    source = Source(load_default="import")
    campaign_id = Int()
    encoding = Text(max_length=20, metadata={"description": "utf-8, utf-8-sig, gbk…; detected when omitted"})


class ImportFiles(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ImportRow(Schema):
    row = Int()
    field = fields.String()
    message = fields.String()
    duplicate_of = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True)


class ImportOut(Schema):
    total = Int()
    created = Int()
    duplicates = Int()
    failed = Int()
    report = fields.List(fields.Nested(ImportRow))


class ScoringIn(Schema):
    completeness = fields.Dict(keys=fields.String(), values=Int(strict=True))
    source = fields.Dict(keys=fields.String(), values=Int(strict=True))
    industry_fit = fields.Dict()
    region_fit = fields.Dict()
    tiers = fields.Dict(keys=fields.String(validate=validate.OneOf(["A", "B", "C"])),
                        values=Int(strict=True, validate=validate.Range(min=0, max=100)))


class AccessLogOut(Schema):
    id = Id()
    at = Aware()
    user_id = fields.String()
    user_name = fields.String(allow_none=True)
    lead_id = Id()
    fields_shown = fields.String(attribute="fields", data_key="fields")
    path = fields.String(allow_none=True)


class AccessLogList(Schema):
    items = fields.List(fields.Nested(AccessLogOut))
    total = Int()
    page = Int()
    per_page = Int()
