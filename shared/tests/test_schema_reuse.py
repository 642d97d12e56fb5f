"""crm_shared.web.Blueprint: one schema instance per `@blp.arguments(SchemaClass)` for every
request (and thread), with the same answers as a fresh instance per request."""
import threading

from flask import Flask
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import Schema, ValidationError, fields, validates_schema

from crm_shared.web import Blueprint


class In(Schema):
    made = 0

    name = fields.String(required=True)
    n = fields.Integer()

    def __init__(self, *a, **kw):
        type(self).made += 1
        super().__init__(*a, **kw)

    @validates_schema
    def _check(self, data, **kw):
        if data.get("n") == 13:
            raise ValidationError("unlucky", "n")


def app():
    a = Flask("t")
    a.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = Api(a)
    blp = Blueprint("t", __name__, url_prefix="/t")

    @blp.route("")
    class V(MethodView):
        @blp.arguments(In)
        def post(self, data):
            return data

    api.register_blueprint(blp)
    return a


def test_one_instance_serves_every_request_and_thread():
    a = app()
    c = a.test_client()
    In.made = 0
    assert c.post("/t", json={"name": "a", "n": 1}).json == {"name": "a", "n": 1}
    r = c.post("/t", json={"n": 1})
    assert r.status_code == 422 and set(r.json["errors"]["json"]) == {"name"}
    r = c.post("/t", json={"name": "x", "n": 13})
    assert r.status_code == 422 and r.json["errors"]["json"] == {"n": ["unlucky"]}
    assert c.post("/t", json={"name": "b", "x": 1}).status_code == 422  # unknown field still refused
    assert c.post("/t", json={"name": "b"}).json == {"name": "b"}       # nothing left over from before
    out = []

    def worker(k):
        cl = a.test_client()  # one client per thread (a test client is not thread-safe)
        for i in range(20):
            r = cl.post("/t", json={"name": f"{k}-{i}", "n": 100 + i})
            out.append((r.status_code, r.json) if r.json != {"name": f"{k}-{i}", "n": 100 + i} else True)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert [x for x in out if x is not True] == [] and len(out) == 80
    assert In.made == 1
