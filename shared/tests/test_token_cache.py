"""The verifier remembers tokens it accepted (web/auth.py TokenVerifier): a remembered token is
still refused from the second it expires, another verifier (another secret, audience, or no
previous secret) checks it in full, refused tokens are never remembered, and the cache is bounded."""
import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from werkzeug.exceptions import Unauthorized

from crm_shared.testing import demo_settings, make_demo_service
from crm_shared.web import create_service_app
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import TokenVerifier, dev_token

A = "a" * 40
B = "b" * 40


def settings(**kw):
    return demo_settings("a", "sqlite://", "sqlite://", "w", **kw)


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def counting(monkeypatch):
    """How many times PyJWT really decodes (the full check) from here on."""
    calls = []
    real = jwt.decode

    def decode(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(jwt, "decode", decode)
    return calls


def test_an_accepted_token_is_checked_once_then_remembered(monkeypatch):
    v = TokenVerifier(settings(jwt_secret=A))
    tok = dev_token(A, "u1", "Li Lei", ["sales_rep"], "east")
    calls = counting(monkeypatch)
    first = v.verify(tok)
    assert v.verify(tok) == first and v.verify(tok).roles == ("sales_rep",) and first.team == "east"
    assert len(calls) == 1


def test_a_remembered_token_is_refused_once_it_expires():
    clock = Clock()
    v = TokenVerifier(settings(jwt_secret=A), clock=clock)
    issued = datetime.now(timezone.utc)
    tok = dev_token(A, "u1", "Li Lei", ["sales_rep"], ttl=timedelta(seconds=60), now=issued)
    exp = int((issued + timedelta(seconds=60)).timestamp())
    assert v.verify(tok).id == "u1"              # checked in full, remembered
    clock.now = exp - 0.5
    assert v.verify(tok).id == "u1"              # from the cache, still valid
    clock.now = exp                              # PyJWT: expired when exp <= now
    with pytest.raises(Unauthorized, match="expired"):
        v.verify(tok)
    clock.now = exp - 0.5                        # forgotten: a clock going back does not revive it from the cache
    assert tok not in v._verified


def test_an_expired_token_is_refused_and_not_remembered():
    v = TokenVerifier(settings(jwt_secret=A))
    past = datetime.now(timezone.utc) - timedelta(hours=2)
    tok = dev_token(A, "u1", "Li Lei", ["sales_rep"], ttl=timedelta(hours=1), now=past)
    for _ in range(2):
        with pytest.raises(Unauthorized, match="expired"):
            v.verify(tok)
    assert not v._verified


def test_another_secret_does_not_accept_a_token_remembered_for_the_first():
    tok = dev_token(A, "u1", "Li Lei", ["admin"])
    assert TokenVerifier(settings(jwt_secret=A)).verify(tok).is_admin
    with pytest.raises(Unauthorized, match="(?i)signature"):
        TokenVerifier(settings(jwt_secret=B)).verify(tok)
    # the rotation grace is a property of the settings, not of the cache
    rotating = TokenVerifier(settings(jwt_secret=B, jwt_previous_secret=A))
    assert rotating.verify(tok).is_admin and rotating.verify(tok).is_admin
    with pytest.raises(Unauthorized, match="(?i)signature"):
        TokenVerifier(settings(jwt_secret=B)).verify(tok)


def test_another_audience_checks_in_full():
    tok = dev_token(A, "u1", "Li Lei", ["admin"])
    assert TokenVerifier(settings(jwt_secret=A)).verify(tok).id == "u1"
    with pytest.raises(Unauthorized, match="aud"):
        TokenVerifier(settings(jwt_secret=A, jwt_audience="crm")).verify(tok)


def test_refused_tokens_are_never_remembered(monkeypatch):
    v = TokenVerifier(settings(jwt_secret=A))
    good = dev_token(A, "u1", "Li Lei", ["admin"])
    head, body, sig = good.split(".")
    forged = dev_token(B, "u1", "Li Lei", ["admin"])
    calls = counting(monkeypatch)
    for bad in (forged, f"{head}.{body}.{sig[:-2]}xx", "not-a-jwt", jwt.encode({"sub": "u1", "exp": 2 ** 40}, A)):
        for _ in range(2):
            with pytest.raises(Unauthorized):
                v.verify(bad)
    assert not v._verified and len(calls) >= 6


def test_the_cache_is_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(TokenVerifier, "CACHE_SIZE", 3)
    v = TokenVerifier(settings(jwt_secret=A))
    toks = [dev_token(A, f"u{i}", f"U{i}", ["sales_rep"]) for i in range(5)]
    v.verify(toks[0])
    for t in toks[1:]:
        v.verify(toks[0])  # keeps u0 the most recently used
        v.verify(t)
    assert len(v._verified) == 3 and toks[0] in v._verified and toks[4] in v._verified
    long = dev_token(A, "u9", "x" * 5000, ["sales_rep"])
    assert v.verify(long).id == "u9" and long not in v._verified


def test_two_apps_with_different_secrets_in_one_process(tmp_path):
    clients = []
    for name, secret in (("a", A), ("b", B)):
        d = make_demo_service(name, handles=())
        app = create_service_app(d, demo_settings(name, f"sqlite:///{tmp_path}/{name}.db",
                                                  f"sqlite:///{tmp_path}/bus.db", "w", jwt_secret=secret), testing=True)
        d.metadata.create_all(runtime_of(app).engine)
        clients.append(app.test_client())
    h = {"Authorization": "Bearer " + dev_token(A, "u1", "Li Lei", ["sales_rep"], "east")}
    assert clients[0].post("/v1/notes", json={"text": "x"}, headers=h).status_code == 201
    assert clients[0].post("/v1/notes", json={"text": "y"}, headers=h).status_code == 201
    assert clients[1].post("/v1/notes", json={"text": "x"}, headers=h).status_code == 401
