import json
import uuid

import pytest
from marshmallow import Schema, fields, validate

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


def test_envelope_json_is_its_dict_for_every_field():
    """`to_json` reads the fields itself (no deep copy): it must still say what `to_dict` says, for
    every field of the dataclass (one added later included) and with or without a trace context."""
    import dataclasses
    base = dict(type="lead.assigned", payload={"lead_id": "1", "nested": {"a": [1, "二"]}, "n": None},
                producer="leads", correlation_id="c-1", causation_id="c-0",
                trace_context={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    names = {f.name for f in dataclasses.fields(Envelope)}
    for env in (Envelope(**base), Envelope(**{**base, "trace_context": None, "causation_id": None}),
                Envelope(type="x.y", payload={}, producer="p")):
        assert json.loads(env.to_json()) == env.to_dict()
        assert env.to_json() == json.dumps(env.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        assert names - set(json.loads(env.to_json())) <= {"trace_context"}
        assert Envelope.from_json(env.to_json()) == env


def _one_of(f):
    return next((v for v in f.validators if isinstance(v, validate.OneOf)), None)


def _variants(schema):
    """Payloads around a schema's fields: valid, with extras, Nones, wrong types, coercible values, gaps;
    for a `OneOf` field each of its choices, and values just outside them."""
    good = {}
    for name, f in schema.load_fields.items():
        one_of = _one_of(f)
        good[name] = list(one_of.choices)[0] if one_of else 7 if isinstance(f, fields.Integer) else "x-1"
    yield dict(good)
    yield {**good, "added_later": {"any": "thing"}}
    yield {k: v for k, v in good.items() if not schema.load_fields[k].required}
    for name, f in schema.load_fields.items():
        for bad in (None, True, "72", 72.0, 3.5, b"bytes", ["x"], {"x": 1}, 5):
            yield {**good, name: bad}
        yield {k: v for k, v in good.items() if k != name}
        one_of = _one_of(f)
        for choice in list(one_of.choices) if one_of else ():
            yield {**good, name: choice}
            near = str(choice).upper() if isinstance(choice, str) else choice + 1
            yield {**good, name: near if near not in one_of.choices else "not-a-choice"}
            yield {**good, name: str(choice) if not isinstance(choice, str) else f" {choice}"}
    yield ["not", "a", "dict"]


def test_plain_payload_fast_path_gives_what_marshmallow_gives_for_every_catalogue_schema():
    """validate_incoming skips marshmallow for schemas of plain String/Integer fields when every value
    already has its field's type; the result, or the error, must be marshmallow's in every case."""
    from marshmallow import EXCLUDE, ValidationError
    from crm_shared.events.registry import _plain_loader
    fast_schemas = 0
    for event_type in REGISTRY.types():
        version = REGISTRY.latest(event_type)
        schema = REGISTRY.schema(event_type, version)(unknown=EXCLUDE)
        if _plain_loader(schema) is not None:
            fast_schemas += 1
        for payload in _variants(schema):
            try:
                expected = ("ok", schema.load(payload))
            except ValidationError as exc:
                expected = ("error", exc.messages)
            try:
                got = ("ok", REGISTRY.validate_incoming(event_type, version, payload))
            except EventValidationError as exc:
                got = ("error", exc.messages)
            assert got == expected, (event_type, payload)
    assert fast_schemas >= 5  # lead.* at least: the fast path is really in use
    # lead.assigned (a OneOf `reason`) too: the intake's second event
    assert _plain_loader(REGISTRY.schema("lead.assigned", 1)(unknown=EXCLUDE)) is not None


def test_plain_payload_fast_path_for_producers_gives_what_marshmallow_gives():
    """validate_outgoing (strict: an undeclared field is an error) also skips marshmallow for plain
    payloads: the result, or the error, must be marshmallow's load-then-dump in every case."""
    from marshmallow import RAISE, ValidationError
    for event_type in REGISTRY.types():
        version = REGISTRY.latest(event_type)
        schema = REGISTRY.schema(event_type, version)(unknown=RAISE)
        for payload in _variants(schema):
            try:
                expected = ("ok", schema.dump(schema.load(payload)))
            except ValidationError as exc:
                expected = ("error", exc.messages)
            try:
                got = ("ok", REGISTRY.validate_outgoing(event_type, version, payload))
            except EventValidationError as exc:
                got = ("error", exc.messages)
            assert got == expected, (event_type, payload)


def test_plain_loader_refuses_schemas_it_cannot_mirror():
    from marshmallow import EXCLUDE, post_load, validate
    from crm_shared.events.registry import _plain_loader

    class WithValidator(Schema):
        a = fields.String(validate=validate.Length(max=3))

    class WithTwoValidators(Schema):
        a = fields.String(validate=[validate.OneOf(["x"]), validate.Length(max=3)])

    class OwnOneOf(validate.OneOf):
        pass

    class WithOneOfSubclass(Schema):
        a = fields.String(validate=OwnOneOf(["x"]))

    class WithOneOfOtherTypes(Schema):
        a = fields.String(validate=validate.OneOf([1, "x"]))

    class WithOneOfIterator(Schema):
        a = fields.String(validate=validate.OneOf(c for c in "xy"))

    class WithHook(Schema):
        a = fields.String()

        @post_load
        def upper(self, data, **_):
            return {k: v.upper() for k, v in data.items()}

    class WithDataKey(Schema):
        a = fields.String(data_key="b")

    class WithDefault(Schema):
        a = fields.String(load_default="d")

    class WithDate(Schema):
        a = fields.DateTime()

    class WithLoadOnly(Schema):
        a = fields.String(load_only=True)

    for cls in (WithValidator, WithTwoValidators, WithOneOfSubclass, WithOneOfOtherTypes, WithOneOfIterator,
                WithHook, WithDataKey, WithDefault, WithDate, WithLoadOnly):
        assert _plain_loader(cls(unknown=EXCLUDE)) is None, cls.__name__
    r = Registry()
    r.register("t.hooked")(WithHook)
    assert r.validate_incoming("t.hooked", 1, {"a": "x"}) == {"a": "X"}
