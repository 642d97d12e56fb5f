"""Auth and error behaviour every service inherits from the shared application factory."""
import base64
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from crm_shared.config import DEV_JWT_SECRET, Settings
from crm_shared.testing import demo_settings, make_demo_service
from crm_shared.web import create_service_app
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token


@pytest.fixture
def app(tmp_path):
    d = make_demo_service("a", handles=())
    app = create_service_app(d, demo_settings("a", f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/bus.db", "w"),
                             testing=True)
    d.metadata.create_all(runtime_of(app).engine)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def token(roles=("sales_rep",), user="u1", secret=DEV_JWT_SECRET, **kw):
    return dev_token(secret, user, "Li Lei", list(roles), "east", **kw)


def auth(t):
    return {"Authorization": f"Bearer {t}"}


def notes_count(app):
    rt = runtime_of(app)
    t = rt.definition.metadata.tables["notes"]
    with rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(t)).scalar_one(), \
            c.execute(select(func.count()).select_from(rt.outbox)).scalar_one()


def test_ops_endpoints_are_public(client):
    assert client.get("/healthz").json == {"status": "ok", "service": "a"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"] == {"database": "ok", "bus": "ok"}
    assert b"crm_http_requests_total" in client.get("/metrics").data
    spec = client.get("/openapi.json").json
    assert "/v1/notes" in spec["paths"] and spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


def test_public_method_of_a_method_view_needs_no_token(client):
    assert client.get("/v1/notes/count").json == {"count": 0}
    assert client.post("/v1/notes", json={"text": "x"}).status_code == 401


def test_created_with_a_valid_token_and_request_id_flows_into_the_event(client, app):
    r = client.post("/v1/notes", json={"text": " hi ", "priority": 2}, headers={**auth(token()), "X-Request-ID": "req-9"})
    assert r.status_code == 201, r.json
    assert r.json["text"] == "hi" and r.headers["X-Request-ID"] == "req-9"
    rt = runtime_of(app)
    with rt.engine.connect() as c:
        env = json.loads(c.execute(select(rt.outbox.c.envelope)).scalar_one())
    assert env["correlation_id"] == "req-9" and env["producer"] == "a"


def _b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("make,why", [
    (lambda: None, "no token"),
    (lambda: "garbage", "not a JWT"),
    (lambda: token(ttl=timedelta(seconds=-5)), "expired"),
    (lambda: token(secret="someone-elses-secret-of-32-chars!!"), "wrong signature"),
    (lambda: token()[:-3] + ("AAA" if not token().endswith("AAA") else "BBB"), "tampered"),
    (lambda: _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(
        {"sub": "u1", "roles": ["admin"], "exp": 4102444800}) + ".", "alg none"),
    (lambda: jwt.encode({"sub": "u1", "exp": 4102444800}, DEV_JWT_SECRET, algorithm="HS256"), "no roles"),
    (lambda: jwt.encode({"roles": ["admin"], "exp": 4102444800}, DEV_JWT_SECRET, algorithm="HS256"), "no sub"),
    (lambda: jwt.encode({"sub": "u1", "roles": ["admin"]}, DEV_JWT_SECRET, algorithm="HS256"), "no exp"),
    (lambda: jwt.encode({"sub": "u1", "roles": ["pope"], "exp": 4102444800}, DEV_JWT_SECRET, algorithm="HS256"),
     "unknown role"),
])
def test_bad_tokens_get_401(client, make, why):
    t = make()
    r = client.post("/v1/notes", json={"text": "x"}, headers=auth(t) if t else {})
    assert r.status_code == 401, why
    assert r.mimetype == "application/problem+json" and r.json["status"] == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_role_gets_403_and_other_users_object_404(client):
    r = client.post("/v1/notes", json={"text": "x"}, headers=auth(token(("service_agent",))))
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    nid = client.post("/v1/notes", json={"text": "x"}, headers=auth(token())).json["id"]
    assert client.get(f"/v1/notes/{nid}", headers=auth(token())).status_code == 200
    r = client.get(f"/v1/notes/{nid}", headers=auth(token(user="u2")))
    assert r.status_code == 404 and r.json["title"] == "Not Found"
    assert client.get("/v1/notes/999", headers=auth(token())).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"priority": 1}, "text"),                        # missing
    ({"text": 5}, "text"),                            # wrong type
    ({"text": "x", "priority": "high"}, "priority"),  # wrong type
    ({"text": "x", "priority": 1.5}, "priority"),
    ({"text": "x", "surprise": 1}, "surprise"),       # unknown field
    ({"text": "x" * 201}, "text"),                    # oversize
    ({"text": "   "}, "text"),                        # empty after trimming
    ({"text": "a\u0000b"}, "text"),                   # NUL
    ({"text": "\ud800"}, "text"),                     # lone surrogate
    ({"text": "x", "tags": ["y" * 21]}, "tags"),
])
def test_invalid_bodies_get_422_field_by_field_and_write_nothing(client, app, body, field):
    raw = json.dumps(body)  # json.dumps escapes the surrogate as \ud800, which is valid JSON
    r = client.post("/v1/notes", data=raw, content_type="application/json", headers=auth(token()))
    assert r.status_code == 422, r.json
    assert r.mimetype == "application/problem+json" and field in r.json["errors"]
    assert notes_count(app) == (0, 0)


def test_malformed_bodies(client, app):
    h = auth(token())
    r = client.post("/v1/notes", data=b'{"text": "x",', content_type="application/json", headers=h)
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    r = client.post("/v1/notes", data=b'{"text": "\xff\xfe"}', content_type="application/json", headers=h)
    assert r.status_code == 422 and "_body" in r.json["errors"]
    r = client.post("/v1/notes", data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json", headers=h)
    assert r.status_code in (400, 422)
    r = client.post("/v1/notes", data=b"[1]", content_type="application/json", headers=h)
    assert r.status_code == 422
    r = client.post("/v1/notes", data=b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}', content_type="application/json",
                    headers=h)
    assert r.status_code == 413 and r.mimetype == "application/problem+json"
    assert notes_count(app) == (0, 0)


def test_database_down_answers_503_with_retry_after(tmp_path):
    d = make_demo_service("a", handles=())
    app = create_service_app(d, demo_settings("a", "postgresql+psycopg://postgres@127.0.0.1:1/none",
                                              f"sqlite:///{tmp_path}/bus.db", "w"), testing=True)
    c = app.test_client()
    r = c.post("/v1/notes", json={"text": "x"}, headers=auth(token()))
    assert r.status_code == 503 and r.headers["Retry-After"] and r.mimetype == "application/problem+json"
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["database"].startswith("unavailable")


def test_production_refuses_the_development_secret(tmp_path):
    base = dict(service="a", database_url="postgresql+psycopg://x@h/db", env="production")
    with pytest.raises(RuntimeError, match="development JWT secret"):
        Settings(**base).check()
    with pytest.raises(RuntimeError):
        create_service_app(make_demo_service("a"), Settings(**base))
    Settings(**base, jwt_secret="x" * 40).check()
    Settings(**base, jwks_url="https://idp.example/jwks.json").check()
    with pytest.raises(RuntimeError, match="PostgreSQL"):
        Settings(service="a", database_url="sqlite:///x.db", env="production", jwt_secret="x" * 40).check()


def test_rs256_tokens_from_a_jwks_url(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"keys": [jwk]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        d = make_demo_service("a", handles=())
        s = demo_settings("a", f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/bus.db", "w",
                          jwks_url=f"http://127.0.0.1:{srv.server_port}/jwks.json", jwt_audience="crm")
        app = create_service_app(d, s, testing=True)
        d.metadata.create_all(runtime_of(app).engine)
        c = app.test_client()
        exp = datetime.now(timezone.utc) + timedelta(minutes=5)
        good = jwt.encode({"sub": "u1", "roles": ["sales_rep"], "exp": exp, "aud": "crm"}, key, algorithm="RS256",
                          headers={"kid": "k1"})
        assert c.post("/v1/notes", json={"text": "x"}, headers=auth(good)).status_code == 201
        hs = jwt.encode({"sub": "u1", "roles": ["sales_rep"], "exp": exp, "aud": "crm"}, DEV_JWT_SECRET,
                        algorithm="HS256")
        assert c.post("/v1/notes", json={"text": "x"}, headers=auth(hs)).status_code == 401
        wrong_aud = jwt.encode({"sub": "u1", "roles": ["sales_rep"], "exp": exp, "aud": "other"}, key,
                               algorithm="RS256", headers={"kid": "k1"})
        assert c.post("/v1/notes", json={"text": "x"}, headers=auth(wrong_aud)).status_code == 401
    finally:
        srv.shutdown()
