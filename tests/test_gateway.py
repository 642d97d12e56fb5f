"""The development gateway (crm_shared/gateway.py) that `crm run` starts on :8080: proxying with
the prefix stripped and streamed, the consoles' static files, their login configuration and the
development token. Against a small fake upstream on a free port; no service needed."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from crm_shared.config import DEV_JWT_SECRET
from crm_shared.gateway import Gateway, serve

ROOT = Path(__file__).resolve().parent.parent


def upstream_app(environ, start_response):
    req = Request(environ)
    if req.path == "/v1/stream":
        def events():
            yield b"id: 1\nevent: inbox\ndata: {\"n\": 1}\n\n"
            time.sleep(1.5)
            yield b"event: bye\ndata: {}\n\n"
        return Response(events(), mimetype="text/event-stream")(environ, start_response)
    if req.path == "/v1/invalid":
        body = {"status": 422, "title": "Unprocessable Entity", "errors": {"json": {"name": ["Missing"]}}}
        return Response(json.dumps(body), status=422, mimetype="application/problem+json")(environ, start_response)
    echo = {"method": req.method, "path": req.path, "query": req.query_string.decode(), "body": req.get_data(as_text=True),
            "headers": {k.lower(): v for k, v in req.headers.items()}}
    return Response(json.dumps(echo), mimetype="application/json", headers={"X-Upstream": "yes"})(environ, start_response)


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def upstream():
    server = _serve(upstream_app)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def start_gateway(upstream, env=None):
    ups = {"leads": upstream, "sales": upstream, "notify": upstream, "service-desk": "http://127.0.0.1:9"}  # 9: nobody
    server = serve(Gateway(ups, ROOT / "frontends", env=env or {}), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def gw(upstream):
    server, url = start_gateway(upstream)
    yield url
    server.shutdown()
    server.server_close()


def test_prefix_is_stripped_and_the_request_passed_on(gw):
    r = requests.post(f"{gw}/leads/v1/leads?page=2&q=%E5%BC%A0", data='{"name": "张三"}',
                      headers={"Authorization": "Bearer abc", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.headers["X-Upstream"] == "yes"
    echo = r.json()
    assert (echo["method"], echo["path"], echo["query"]) == ("POST", "/v1/leads", "page=2&q=%E5%BC%A0")
    assert echo["body"] == '{"name": "张三"}'
    h = echo["headers"]
    assert h["authorization"] == "Bearer abc" and h["x-forwarded-prefix"] == "/leads"
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == gw.split("//")[1]
    assert h["x-request-id"]  # made up when the caller sends none
    r = requests.get(f"{gw}/sales/healthz", headers={"X-Request-ID": "req-42"})
    assert r.json()["path"] == "/healthz" and r.json()["headers"]["x-request-id"] == "req-42"


def test_upstream_errors_pass_through_unchanged(gw):
    r = requests.post(f"{gw}/notify/v1/invalid", json={})
    assert r.status_code == 422 and r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["errors"] == {"json": {"name": ["Missing"]}}


def test_an_unreachable_service_is_a_502_problem(gw):
    r = requests.get(f"{gw}/service-desk/v1/tickets")
    assert r.status_code == 502 and r.headers["Content-Type"] == "application/problem+json"
    assert "service-desk" in r.json()["detail"]


def test_server_sent_events_arrive_as_they_are_written(gw):
    started = time.monotonic()
    with requests.get(f"{gw}/notify/v1/stream", stream=True, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        chunks = r.iter_content(chunk_size=None)
        first = next(chunks)
        first_at = time.monotonic() - started
        rest = b"".join(chunks)
    assert first.startswith(b"id: 1\nevent: inbox")
    assert first_at < 1.0, f"the first event waited {first_at:.2f}s for the end of the stream"
    assert b"event: bye" in rest and time.monotonic() - started >= 1.4


def test_unknown_paths_are_404_problems(gw):
    for path in ("/nothing", "/leadsx/v1", "/leads"):
        r = requests.get(gw + path, allow_redirects=False)
        assert r.status_code == 404 and r.json()["status"] == 404, path


def test_consoles_are_static_files_under_app(gw):
    r = requests.get(f"{gw}/", allow_redirects=False)
    assert r.status_code in (301, 302) and r.headers["Location"].endswith("/app/")
    r = requests.get(f"{gw}/app/sales", allow_redirects=False)
    assert r.status_code in (301, 302) and r.headers["Location"].endswith("/app/sales/")
    for console in ("sales", "backoffice", "service", "managers"):
        r = requests.get(f"{gw}/app/{console}/")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert '<script type="importmap">' in r.text
    r = requests.get(f"{gw}/app/common/lib/api.js")
    assert r.status_code == 200 and "javascript" in r.headers["Content-Type"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    etag = r.headers["ETag"]
    assert requests.get(f"{gw}/app/common/lib/api.js", headers={"If-None-Match": etag}).status_code == 304
    for path in ("/app/../pyproject.toml", "/app/%2e%2e/Makefile", "/app/common/../../Makefile", "/app/nope.js"):
        assert requests.get(gw + path).status_code == 404, path
    assert requests.post(f"{gw}/app/sales/", data="x").status_code == 405


def test_login_configuration(upstream):
    for env, expected in (({}, {"auth": "dev", "env": "development"}),
                          ({"CRM_OIDC_ISSUER": "https://id.example.com/realms/crm/", "CRM_OIDC_CLIENT_ID": "consoles",
                            "CRM_ENV": "production", "CRM_JWT_SECRET": "x" * 40},
                           {"auth": "oidc", "env": "production",
                            "oidc": {"issuer": "https://id.example.com/realms/crm", "client_id": "consoles",
                                     "scope": "openid profile", "audience": None}})):
        server, url = start_gateway(upstream, env)
        try:
            r = requests.get(f"{url}/app/config.json")
            assert r.status_code == 200 and r.json() == expected
            assert r.headers["Cache-Control"] == "no-store"
        finally:
            server.shutdown()
            server.server_close()
    server, url = start_gateway(upstream, {"CRM_ENV": "production"})
    try:  # production without an identity provider: no login at all rather than the dev picker
        assert requests.get(f"{url}/app/config.json").status_code == 503
    finally:
        server.shutdown()
        server.server_close()


def test_dev_token_for_the_user_picker(gw):
    r = requests.post(f"{gw}/auth/dev-token", json={"user": "rep-li", "name": "李雷", "roles": ["sales_rep"],
                                                     "team": "east", "lang": "en"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(r.json()["token"], DEV_JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["name"], claims["roles"], claims["team"], claims["lang"]) == (
        "rep-li", "李雷", ["sales_rep"], "east", "en")
    r = requests.post(f"{gw}/auth/dev-token", json={"user": "", "roles": ["root"], "extra": 1, "lang": "fr"})
    assert r.status_code == 422
    assert set(r.json()["errors"]["json"]) == {"user", "name", "roles", "extra", "lang"}
    assert requests.post(f"{gw}/auth/dev-token", data="{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert requests.post(f"{gw}/auth/dev-token", json=["a"]).status_code == 400
    assert requests.get(f"{gw}/auth/dev-token").status_code == 405


class FakeDirectory:
    """notify's PUT/GET /v1/recipients/{id}, in memory, answering only service tokens."""

    def __init__(self, known: dict):
        self.people, self.calls = dict(known), []

    def __call__(self, environ, start_response):
        req = Request(environ)
        claims = jwt.decode(req.headers["Authorization"].split()[1], DEV_JWT_SECRET, algorithms=["HS256"])
        user = req.path.rsplit("/", 1)[1]
        self.calls.append((req.method, req.path, claims["roles"]))
        if req.method == "PUT":
            self.people[user] = req.get_json()
            return Response(json.dumps(self.people[user]), mimetype="application/json")(environ, start_response)
        if user in self.people:
            return Response(json.dumps(self.people[user]), mimetype="application/json")(environ, start_response)
        return Response("{}", status=404, mimetype="application/problem+json")(environ, start_response)


def test_a_picked_development_user_is_named_in_notify_directory_once(upstream):
    directory = FakeDirectory({"rep-han": {"name": "韩梅梅", "email": "han@example.com"}})
    notify = _serve(directory)
    server = serve(Gateway({"notify": f"http://127.0.0.1:{notify.server_port}"}, ROOT / "frontends", env={}), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gw = f"http://127.0.0.1:{server.server_port}"
    try:
        pick = {"user": "rep-li", "name": "李雷", "roles": ["sales_rep"], "team": "east", "lang": "en"}
        assert requests.post(f"{gw}/auth/dev-token", json=pick).status_code == 200
        assert directory.people["rep-li"] == {"name": "李雷", "roles": ["sales_rep"], "team_id": "east", "language": "en"}
        assert all(roles == ["service"] for _, _, roles in directory.calls)
        # known already: nothing the directory holds is replaced
        directory.calls.clear()
        assert requests.post(f"{gw}/auth/dev-token", json={**pick, "user": "rep-han", "name": "Han"}).status_code == 200
        assert directory.people["rep-han"] == {"name": "韩梅梅", "email": "han@example.com"}
        assert [m for m, _, _ in directory.calls] == ["GET"]
    finally:
        notify.shutdown()
        server.shutdown()
        server.server_close()
    # notify down: the token is still issued
    server, url = start_gateway("http://127.0.0.1:9")
    try:
        assert requests.post(f"{url}/auth/dev-token", json=pick).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_dev_token_is_refused_in_production(upstream):
    server, url = start_gateway(upstream, {"CRM_ENV": "production", "CRM_JWT_SECRET": "y" * 40})
    try:
        r = requests.post(f"{url}/auth/dev-token", json={"user": "a", "name": "A", "roles": ["admin"]})
        assert r.status_code == 403 and "production" in r.json()["detail"]
    finally:
        server.shutdown()
        server.server_close()
