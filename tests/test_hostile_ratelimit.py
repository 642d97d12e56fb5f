"""Rate limits on the public endpoints, per client address: the leads web-form / ad-platform intake
and the service desk's CSAT survey. 429 problem+json with Retry-After; X-Forwarded-For counts only
behind a trusted proxy (CRM_TRUST_PROXY=1); one limit across processes sharing the database;
authenticated calls are not limited by it."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402
from crm_shared.clock import FrozenClock  # noqa: E402

T0 = datetime(2026, 3, 2, 2, 0, 10, tzinfo=timezone.utc)
MGR = ("mgr1", ("sales_manager",), "east")
REP = ("rep1", ("sales_rep",), "east")
A, B, PROXY = "203.0.113.7", "198.51.100.9", "10.0.0.2"


def _from(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


@pytest.fixture
def leads(tmp_path):
    clock = FrozenClock(T0)
    app = h.make_app("leads", tmp_path, clock=clock, extra={"LEADS_INTAKE_RATE_LIMIT": "5/minute"})
    c = h.Client(app)
    src = c.ok("POST", "/v1/sources", MGR, {"name": "Website", "source": "website", "rate_per_minute": 1000})
    yield c, clock, f"/v1/intake/{src['key']}"
    h.close(app)


def _intake(c, url, ip, i, headers=None):
    return c.client.post(url, json={"phone": f"1380013{i:04d}"}, headers=headers or {}, **_from(ip))


def test_intake_is_limited_per_client_address_with_retry_after(leads):
    c, clock, url = leads
    codes = [_intake(c, url, A, i).status_code for i in range(7)]
    assert codes == [202] * 5 + [429] * 2
    r = _intake(c, url, A, 8)
    assert r.status_code == 429 and r.mimetype == "application/problem+json" and r.get_json()["status"] == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert _intake(c, url, B, 9).status_code == 202  # another client has its own window
    # a client cannot pretend to be another one through X-Forwarded-For (no trusted proxy here)
    assert _intake(c, url, A, 10, {"X-Forwarded-For": "192.0.2.55"}).status_code == 429
    clock.advance(seconds=int(r.headers["Retry-After"]))
    assert _intake(c, url, A, 11).status_code == 202


def test_authenticated_calls_are_not_limited_by_it(leads):
    c, _, url = leads
    for i in range(6):
        _intake(c, url, A, i)
    assert _intake(c, url, A, 20).status_code == 429
    # the same address, signed in: the API's own endpoints are not the public limit's business
    r = c.client.post("/v1/leads", json={"phone": "13900139001"}, headers=h.auth(*REP), **_from(A))
    assert r.status_code == 201
    # and an internal caller (service account) posting to the intake is not counted
    svc = {"Authorization": "Bearer " + h.token("svc-web", ("service",))}
    assert all(_intake(c, url, A, 30 + i, svc).status_code == 202 for i in range(8))
    # a token that does not verify is no exemption
    bad = {"Authorization": "Bearer " + h.token("svc-web", ("service",), secret="x" * 40)}
    assert _intake(c, url, A, 40, bad).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_TRUST_PROXY", "1")
    app = h.make_app("leads", tmp_path, clock=FrozenClock(T0), extra={"LEADS_INTAKE_RATE_LIMIT": "3/minute"})
    try:
        c = h.Client(app)
        src = c.ok("POST", "/v1/sources", MGR, {"name": "Ads", "source": "ad_platform", "rate_per_minute": 1000})
        url = f"/v1/intake/{src['key']}"
        fwd = lambda ip: {"X-Forwarded-For": ip}  # noqa: E731 - the gateway's header; the peer is the proxy
        assert [_intake(c, url, PROXY, i, fwd(A)).status_code for i in range(4)] == [202, 202, 202, 429]
        assert _intake(c, url, PROXY, 5, fwd(B)).status_code == 202
        # one hop only: what the client wrote before the gateway's own entry does not count
        assert _intake(c, url, PROXY, 6, fwd(f"192.0.2.1, {A}")).status_code == 429
    finally:
        h.close(app)


def test_one_limit_across_worker_processes(tmp_path, database_url):
    """Two apps on one database stand for two gunicorn workers (or, on PostgreSQL, two replicas)."""
    clock = FrozenClock(T0)
    apps = [h.make_app("leads", tmp_path, clock=clock, url=database_url, extra={"LEADS_INTAKE_RATE_LIMIT": "4/minute"})
            for _ in range(2)]
    try:
        first = h.Client(apps[0])
        src = first.ok("POST", "/v1/sources", MGR, {"name": "Web", "source": "website", "rate_per_minute": 1000})
        url = f"/v1/intake/{src['key']}"
        codes = [_intake(h.Client(apps[i % 2]), url, A, i).status_code for i in range(6)]
        assert codes == [202, 202, 202, 202, 429, 429]
    finally:
        for app in apps:
            h.close(app)


def test_csat_is_limited_per_client_address(tmp_path):
    clock = FrozenClock(T0)
    app = h.make_app("service-desk", tmp_path, clock=clock, extra={"CSAT_RATE_LIMIT": "3/minute"})
    try:
        c = h.Client(app)
        # guessing tokens: 404, 404, 404, then the address is told to wait
        codes = [c.client.get(f"/v1/csat/guess-{i}", **_from(A)).status_code for i in range(3)]
        codes += [c.client.post("/v1/csat/guess-9", json={"score": 5}, **_from(A)).status_code]
        assert codes == [404, 404, 404, 429]
        r = c.client.get("/v1/csat/guess-10", **_from(A))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.mimetype == "application/problem+json"
        assert c.client.get("/v1/csat/guess-11", **_from(B)).status_code == 404
        # agents working from the same office address are not affected
        sup = h.auth("sup", ("service_supervisor",))
        assert c.client.get("/v1/tickets", headers=sup, **_from(A)).status_code == 200
        clock.advance(minutes=1)
        assert c.client.get("/v1/csat/guess-12", **_from(A)).status_code == 404
    finally:
        h.close(app)


def test_limits_are_configurable_and_can_be_turned_off(tmp_path):
    from crm_shared.web.ratelimit import parse
    assert parse("30/minute") == (30, 60) and parse("2/second") == (2, 1) and parse("100/hour") == (100, 3600)
    assert parse("0") == (0, 1)
    for bad in ("lots", "5/fortnight", "-1/minute"):
        with pytest.raises(ValueError):
            parse(bad)
    app = h.make_app("service-desk", tmp_path, extra={"CSAT_RATE_LIMIT": "0"})
    try:
        c = h.Client(app)
        assert {c.client.get(f"/v1/csat/t{i}", **_from(A)).status_code for i in range(30)} == {404}
    finally:
        h.close(app)
