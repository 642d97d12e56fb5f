"""crm_shared.web.fastdump: the compiled dump gives exactly what `Schema.dump` gives (values, keys
and their order, errors), and is refused or falls back wherever it could not."""
import decimal
import random
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from types import MappingProxyType, SimpleNamespace

import flask_smorest
import pytest
from flask import Flask, current_app
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import Schema, fields, post_dump, pre_dump

from crm_shared.web import Blueprint
from crm_shared.web.fastdump import compile_dump


class Inner(Schema):
    a = fields.Integer()
    b = fields.String(allow_none=True)


class Wide(Schema):
    s = fields.String(allow_none=True)
    i = fields.Integer()
    i_str = fields.Integer(as_string=True)
    flag = fields.Boolean()
    when = fields.DateTime(allow_none=True)
    day = fields.Date(allow_none=True)
    money = fields.Decimal(as_string=True, allow_none=True)
    f = fields.Float(allow_none=True)
    renamed = fields.String(data_key="outName")
    source_attr = fields.String(attribute="elsewhere")
    defaulted = fields.String(dump_default="dflt")
    called_default = fields.Integer(dump_default=lambda: 7)
    secret = fields.String(load_only=True)
    tags = fields.List(fields.String())
    inner = fields.Nested(Inner, allow_none=True)
    inners = fields.Nested(Inner, many=True)
    raw = fields.Raw()


class Ordered(Wide):
    class Meta:
        ordered = True


def _value(rng, key):
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    pool = {
        "s": [None, "", "text", "客户", 12, 3.5],
        "i": [0, -3, 2 ** 63 - 1, True, 4.9, decimal.Decimal("8"), "12", "not a number"],
        "i_str": [5, 0, None],
        "flag": [True, False, 0, 1, "true", "no", None, [], "x"],
        "when": [None, now, now.replace(tzinfo=None), now.astimezone(timezone(timedelta(hours=8)))],
        "day": [None, now.date()],
        "money": [None, decimal.Decimal("12.50"), decimal.Decimal("-0.01"), 3],
        "f": [None, 1.5, 2, decimal.Decimal("2.25")],
        "renamed": ["r", None], "elsewhere": ["e", None, 9], "source_attr": ["not read"],
        "defaulted": ["given", None], "called_default": [1, None], "secret": ["pw"],
        "tags": [[], ["a", "b"], ("c",), None],
        "inner": [None, {"a": 1, "b": "x"}, {"a": 2}, {}],
        "inners": [[], [{"a": 1}, {"a": 2, "b": None}], None],
        "raw": [None, {"k": [1, 2]}, "r", 5],
        "unknown": ["ignored"],
    }
    return rng.choice(pool[key])


def _objects(n=400, seed=8):
    rng = random.Random(seed)
    keys = ["s", "i", "i_str", "flag", "when", "day", "money", "f", "renamed", "elsewhere", "source_attr",
            "defaulted", "called_default", "secret", "tags", "inner", "inners", "raw", "unknown"]
    for _ in range(n):
        yield {k: _value(rng, k) for k in keys if rng.random() < 0.8}


@pytest.mark.parametrize("schema_cls", [Wide, Ordered])
def test_same_output_keys_order_and_errors_as_marshmallow(schema_cls):
    schema = schema_cls()
    fast = compile_dump(schema)
    assert fast is not None
    compared = errors = 0
    for obj in _objects():
        try:
            expected = schema.dump(obj)
        except Exception as exc:  # noqa: BLE001 - the same error type must come out of the fast path
            with pytest.raises(type(exc)):
                fast(obj)
            errors += 1
            continue
        got = fast(obj)
        assert got == expected and list(got) == list(expected) and type(got) is type(expected)
        compared += 1
    assert compared > 200 and errors > 0  # both kinds of input were exercised
    objs = [o for o in _objects(30, seed=3) if "i_str" not in o or o["i_str"] is not None]
    try:
        expected_many = schema.dump(objs, many=True)
    except Exception:  # noqa: BLE001
        expected_many = None
    if expected_many is not None:
        assert fast(objs, many=True) == expected_many


def test_other_objects_go_through_marshmallow():
    schema = Inner()
    fast = compile_dump(schema)
    for obj in (OrderedDict(a=1, b="x"), MappingProxyType({"a": 1}), SimpleNamespace(a=3, b=None), None):
        assert fast(obj) == schema.dump(obj)
    assert fast([{"a": 1}, SimpleNamespace(a=2, b="y")], many=True) == schema.dump(
        [{"a": 1}, SimpleNamespace(a=2, b="y")], many=True)
    assert Inner(many=True).dump([{"a": 1}]) == compile_dump(Inner(many=True))([{"a": 1}]) == [{"a": 1}]


class WithPreDump(Inner):
    @pre_dump
    def _p(self, data, **kw):
        return {**data, "a": 99}


class WithPostDump(Inner):
    @post_dump
    def _p(self, data, **kw):
        return {**data, "added": True}


class OwnGetValue(fields.String):
    def get_value(self, obj, attr, accessor=None, default=None):
        return "mine"


class OwnSerialize(fields.String):
    def serialize(self, attr, obj, accessor=None, **kw):
        return "always"


class OwnAccessor(Schema):
    a = fields.Integer()

    def get_attribute(self, obj, attr, default):
        return 5


class Path(Schema):
    a = fields.Integer(attribute="x.y")


class DictMethodName(Schema):
    items = fields.Raw()


class Method(Schema):
    m = fields.Method("_m")

    def _m(self, obj):
        return "m"


class Getter(Schema):
    g = fields.String()
    own = OwnGetValue()


class Serializer(Schema):
    own = OwnSerialize()


@pytest.mark.parametrize("schema_cls", [WithPreDump, WithPostDump, OwnAccessor, Path, DictMethodName, Method,
                                        Getter, Serializer])
def test_schemas_it_could_get_wrong_are_refused(schema_cls):
    assert compile_dump(schema_cls()) is None


def _serving(name, blueprint_cls, objects):
    """An app whose GET /w/<k> answers objects[k] through `@response(200, Wide)` of that blueprint class."""
    app = Flask(name)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    blp = blueprint_cls("w", __name__, url_prefix="/w")

    @blp.route("/<int:k>")
    class One(MethodView):
        @blp.response(200, Wide)
        def get(self, k):
            return objects[k]

    api.register_blueprint(blp)
    return app, api


def test_the_blueprint_gives_response_schemas_the_compiled_dump_and_answers_the_same(monkeypatch):
    objs = [o for o in _objects(40, seed=5) if o.get("i_str", 0) is not None and o.get("called_default", 0) is not None]
    good = []
    for o in objs:
        try:
            Wide().dump(o)
            good.append(o)
        except Exception:  # noqa: BLE001
            pass
    app, api = _serving("t", Blueprint, good)
    plain, plain_api = _serving("p", flask_smorest.Blueprint, good)
    slow_dumps = []
    original = Schema._serialize

    def counting(self, obj, *, many=False):
        if type(self) is Wide:
            slow_dumps.append(current_app.name)
        return original(self, obj, many=many)

    monkeypatch.setattr(Schema, "_serialize", counting)
    c, p = app.test_client(), plain.test_client()
    for k in range(len(good)):
        a, b = c.get(f"/w/{k}"), p.get(f"/w/{k}")
        assert a.status_code == b.status_code == 200 and a.data == b.data
    assert slow_dumps == ["p"] * len(good)  # the plain blueprint's marshmallow dump, never ours
    assert api.spec.to_dict()["components"] == plain_api.spec.to_dict()["components"]
    assert api.spec.to_dict()["paths"] == plain_api.spec.to_dict()["paths"]
