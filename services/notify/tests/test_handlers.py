"""Every event the catalogue binds to notify is handled (no crash, acknowledged), with only its
required fields and with its optional user fields filled in; each default subscription reaches
the recipient its payload names."""
import pytest
from marshmallow import fields, validate

from crm_shared.events import REGISTRY
from crm_shared.events.catalogue import bindings_for

from notify.domain.defaults import DEFAULT_SUBSCRIPTIONS


def _value(name, field):
    for v in getattr(field, "validators", []):
        if isinstance(v, validate.OneOf):
            return list(v.choices)[0]
        if isinstance(v, validate.Range):
            return v.min
    if isinstance(field, fields.List):
        return ["u1"] if name.endswith("_ids") else []
    if isinstance(field, fields.Nested):
        return {}
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Integer):
        return 31 if name == "days_overdue" else 1
    if isinstance(field, fields.Decimal):
        return "100.00"
    if isinstance(field, fields.AwareDateTime):
        return "2026-03-10T02:00:00+00:00"
    if isinstance(field, fields.Date):
        return "2026-03-10"
    if name == "currency":
        return "CNY"
    return "u1" if name.endswith("_id") or name == "escalated_to" else f"{name}-1"


def payload(event_type, optional=False):
    schema = REGISTRY.schema(event_type, REGISTRY.latest(event_type))
    return {n: _value(n, f) for n, f in schema._declared_fields.items() if f.required or optional}


@pytest.mark.parametrize("event_type", bindings_for("notify"))
def test_every_bound_event_is_handled(env, event_type):
    env.recipient("u1", mobile="+8613800000000", roles=["ops", "sales_manager"], team_id="team_id-1")
    env.publish(event_type, payload(event_type))
    e = env.publish(event_type, payload(event_type, optional=True))
    env.send_due()
    rows = env.deliveries(event_id=e.id)
    assert all(r.status != "failed" for r in rows), [(r.channel, r.last_error) for r in rows]
    expected = {s.recipient_value for s in DEFAULT_SUBSCRIPTIONS
                if s.event_type == event_type and s.recipient_kind == "field"}
    if expected and event_type not in ("csat.submitted", "payment.overdue", "lead.assigned"):
        assert any(r.recipient == "u1" for r in rows), event_type
