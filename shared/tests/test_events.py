import json
import uuid

import pytest
from marshmallow import Schema, fields

from crm_shared.events import REGISTRY, Envelope, EventValidationError, UnknownEventType
from crm_shared.events.catalogue import CONSUMERS, PRODUCERS, SERVICES, bindings_for
from crm_shared.events.envelope import EnvelopeError
from crm_shared.events.registry import Registry


def test_catalogue_covers_architecture_events():
    for t in ["lead.created", "lead.assigned", "lead.followed_up", "lead.recycle_warning", "lead.recycled",
              "lead.converted", "lead.disqualified", "customer.created", "customer.updated", "approval.requested",
              "approval.decided", "contract.signed", "contract.expiring", "contract.renewed", "contract.terminated",
              "order.submitted", "order.fulfilled", "payment.received", "payment.overdue", "customer.churned",
              "ticket.created", "ticket.assigned", "ticket.resolved", "ticket.sla_warning", "ticket.sla_breached",
              "ticket.escalated", "csat.submitted", "referral.spotted"]:
        assert REGISTRY.latest(t) == 1
        assert t in CONSUMERS and PRODUCERS[t] in SERVICES
    assert set(REGISTRY.types()) == set(CONSUMERS)
    assert "lead.converted" in bindings_for("sales") and "lead.converted" not in bindings_for("notify")
    assert all(PRODUCERS[t] not in CONSUMERS[t] for t in CONSUMERS), "a service never consumes its own events"


def test_producer_validation_is_strict_and_serialises():
    out = REGISTRY.validate_outgoing("payment.received", 1, {
        "payment_id": "p1", "contract_id": "c1", "customer_id": "cu1", "amount": "1234.50", "currency": "CNY",
        "paid_on": "2026-11-23"})
    assert out["amount"] == "1234.50" and isinstance(out["amount"], str)
    json.dumps(out)
    with pytest.raises(EventValidationError) as e:
        REGISTRY.validate_outgoing("payment.received", 1, {"payment_id": "p1", "surprise": 1})
    assert "surprise" in e.value.messages and "amount" in e.value.messages
    with pytest.raises(UnknownEventType):
        REGISTRY.validate_outgoing("lead.teleported", 1, {})


def test_consumer_validation_tolerates_added_fields():
    got = REGISTRY.validate_incoming("lead.created", 1, {"lead_id": "1", "status": "new", "added_in_future": True})
    assert got == {"lead_id": "1", "status": "new"}


def test_versions_live_side_by_side():
    r = Registry()

    @r.register("x.happened", 1)
    class V1(Schema):
        name = fields.String(required=True)

    @r.register("x.happened", 2)
    class V2(Schema):
        full_name = fields.String(required=True)

    assert r.latest("x.happened") == 2
    assert r.validate_incoming("x.happened", 1, {"name": "a"}) == {"name": "a"}
    with pytest.raises(ValueError):
        r.register("x.happened", 2)(V2)


def test_envelope_round_trip_and_rejects_garbage():
    env = Envelope(type="lead.created", payload={"lead_id": "1", "status": "new"}, producer="leads",
                   correlation_id="req-1", causation_id=None)
    back = Envelope.from_json(env.to_json().encode())
    assert back == env
    assert uuid.UUID(back.id) and back.occurred_at.endswith("+00:00")
    for bad in [b"not json", b"[]", b'{"id": "x"}',
                json.dumps({**env.to_dict(), "id": "not-a-uuid"}).encode(),
                json.dumps({**env.to_dict(), "payload": []}).encode()]:
        with pytest.raises(EnvelopeError):
            Envelope.from_json(bad)
