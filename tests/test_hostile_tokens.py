"""Bad tokens on every protected operation of every service (enumerated from its OpenAPI document):
missing, malformed, expired, signed with another key, `alg: none`, missing or mistyped claims,
an RS256 token where HS256 is expected, an unknown role: always 401, never 500, never data. A valid
token of a role the service has nothing for gets 403 (or 404), except on the operations listed in
ANY_USER, which every signed-in user has (their own inbox, preferences, ...)."""
from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import jwt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

pytestmark = pytest.mark.reliability  # figures for docs/RELIABILITY.md (make reliability)

NOW = int(time.time())
GOOD = {"sub": "u1", "name": "U1", "roles": ["admin"], "team": "east", "lang": "en", "iat": NOW, "exp": NOW + 3600}


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _hs(claims, secret=h.DEV_JWT_SECRET, headers=None) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def _rsa_token() -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(GOOD, key, algorithm="RS256")


def _without(claim):
    return {k: v for k, v in GOOD.items() if k != claim}


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "bearer without token": "Bearer ",
    "basic scheme": "Basic " + base64.b64encode(b"admin:admin").decode(),
    "not a jwt": "Bearer not-a-jwt",
    "two parts": "Bearer abc.def",
    "garbage base64": "Bearer %%%.%%%.%%%",
    "token without scheme": _hs(GOOD),
    "expired": "Bearer " + _hs({**GOOD, "iat": NOW - 7200, "exp": NOW - 3600}),
    "wrong signature": "Bearer " + _hs(GOOD, secret="another-secret-of-at-least-32-characters!"),
    "tampered payload": "Bearer " + ".".join([_hs(GOOD).split(".")[0], _b64({**GOOD, "roles": ["admin"], "sub": "x"}),
                                              _hs({**GOOD, "roles": ["sales_rep"]}).split(".")[2]]),
    "alg none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(GOOD) + ".",
    "alg none, signature kept": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(GOOD) + "."
                                + _hs(GOOD).split(".")[2],
    "RS256 from an unknown key": "Bearer " + _rsa_token(),
    "no sub": "Bearer " + _hs(_without("sub")),
    "empty sub": "Bearer " + _hs({**GOOD, "sub": ""}),
    "sub not a string": "Bearer " + _hs({**GOOD, "sub": 42}),
    "no exp": "Bearer " + _hs(_without("exp")),
    "exp not a number": "Bearer " + _hs({**GOOD, "exp": "tomorrow"}),
    "no roles": "Bearer " + _hs(_without("roles")),
    "roles not a list": "Bearer " + _hs({**GOOD, "roles": "admin"}),
    "unknown role": "Bearer " + _hs({**GOOD, "roles": ["root"]}),
    "role not a string": "Bearer " + _hs({**GOOD, "roles": [{"admin": True}]}),
    "not yet valid": "Bearer " + _hs({**GOOD, "nbf": NOW + 3600}),
    "huge header": "Bearer " + "a" * 20000,
}

# a role with nothing to do in the service
OUTSIDER = {"leads": "service_agent", "sales": "service_agent", "service-desk": "finance", "notify": "service_agent"}
# operations without an id that every signed-in user has, whatever their role: their own things,
# lists scoped to what they may see (tests/test_hostile_objects.py checks strangers see nothing in
# them), the company's set-up, and capture (anyone may bring a lead; referrals come from service).
# Operations with an id are classified in test_hostile_objects.TABLE.
ANY_USER = {
    "leads": {"GET /v1/leads", "GET /v1/leads/export", "POST /v1/leads", "GET /v1/pool", "GET /v1/lookup", "GET /v1/campaigns",
              "GET /v1/routing-rules", "GET /v1/teams", "GET /v1/scoring", "GET /v1/pool-policy"},
    "sales": {"GET /v1/approval-policies", "GET /v1/approvals", "GET /v1/contracts", "GET /v1/customers",
              "GET /v1/exchange-rates", "GET /v1/opportunities", "GET /v1/orders", "GET /v1/products",
              "GET /v1/quotes"},
    "service-desk": {"GET /v1/calendar", "GET /v1/tickets"},
    "notify": {"GET /v1/inbox", "POST /v1/inbox/read-all", "GET /v1/inbox/stream", "GET /v1/inbox/unread-count",
               "GET /v1/preferences", "PUT /v1/preferences", "GET /v1/deliveries", "GET /v1/subscriptions",
               "GET /v1/templates", "GET /v1/webhooks", "GET /v1/people"},
}


@pytest.fixture(scope="module", params=h.NAMES)
def service(request, tmp_path_factory):
    app = h.make_app(request.param, tmp_path_factory.mktemp(request.param))
    yield request.param, app.test_client()
    h.close(app)


def _call(client, method, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    if path.endswith("/stream"):
        kw["query_string"] = {"max_seconds": "0.1"}
    return client.open(h.fill(path), method=method, headers=headers, **kw)


def test_every_bad_token_gets_401_on_every_protected_operation(service):
    name, client = service
    ops = [(m, p) for m, p, op in h.operations(name) if not h.is_public(op)]
    assert len(ops) > 10
    wrong = []
    for method, path in ops:
        for label, authz in BAD_AUTHORIZATION.items():
            r = _call(client, method, path, authz)
            body = r.get_json(silent=True) or {}
            if (r.status_code != 401 or r.mimetype != "application/problem+json" or set(body) - {
                    "type", "title", "status", "detail", "instance"} or "Bearer" not in r.headers.get("WWW-Authenticate", "")):
                wrong.append(f"{method} {path} [{label}]: {r.status_code} {r.get_data(as_text=True)[:200]}")
    h.record("tokens", name, {"operations": len(ops), "bad_tokens": len(BAD_AUTHORIZATION),
                              "requests": len(ops) * len(BAD_AUTHORIZATION), "failures": len(wrong)})
    assert not wrong, "\n".join(wrong)


def test_a_role_without_business_here_gets_403(service):
    name, client = service
    outsider = "Bearer " + h.token("outsider", (OUTSIDER[name],), "nowhere")
    wrong, checked = [], 0
    for method, path, op in h.operations(name):
        if h.is_public(op) or "{" in path or f"{method} {path}" in ANY_USER.get(name, set()):
            continue
        checked += 1
        r = _call(client, method, path, outsider)
        if r.status_code not in (403, 404) or r.mimetype != "application/problem+json":
            wrong.append(f"{method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert checked >= 3
    assert not wrong, "\n".join(wrong)


def test_any_user_operations_exist():
    """ANY_USER names real operations (a renamed one would silently widen the 403 test's gaps)."""
    for name, allowed in ANY_USER.items():
        assert allowed <= {f"{m} {p}" for m, p, _ in h.operations(name)}
