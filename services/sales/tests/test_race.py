"""Two decisions on one step at the same moment: exactly one counts (PostgreSQL, threads)."""
import threading

import pytest
from sqlalchemy import func, select

from sales import models
from sales.testing import ADMIN, GM, MGR, MGR2, REP, Api, make_app, opportunity, quote, seed_products


@pytest.fixture
def pg_api(pg_url, tmp_path, clock):
    api = Api(make_app(pg_url, tmp_path, clock))
    yield api
    api.runtime.close()


def race(api, approval_id, users, decisions):
    barrier = threading.Barrier(len(users))
    codes = {}

    def go(who, decision):
        barrier.wait()
        r = api.post(f"/v1/approvals/{approval_id}/decision", who, {"decision": decision})
        codes[who[0]] = r.status_code

    threads = [threading.Thread(target=go, args=(u, d)) for u, d in zip(users, decisions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


@pytest.mark.parametrize("round_", range(3))
def test_two_simultaneous_decisions_on_one_step_exactly_one_counts(pg_api, round_):
    api = pg_api
    seed_products(api)
    opp = opportunity(api)
    q = quote(api, opp["id"], discount="25")  # three steps: the race is on step 1
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    decisions = ["approve", "reject"] if round_ == 2 else ["approve", "approve"]
    codes = race(api, a["id"], [MGR, MGR2], decisions)
    assert sorted(codes.values()) == [200, 409], codes
    with api.runtime.engine.connect() as c:
        acts = c.execute(select(func.count()).select_from(models.approval_decisions).where(
            models.approval_decisions.c.action.in_(("approve", "reject")))).scalar_one()
        steps = c.execute(select(models.approval_steps.c.status).where(
            models.approval_steps.c.approval_id == a["id"]).order_by(models.approval_steps.c.seq)).scalars().all()
    assert acts == 1
    assert len(api.events("approval.decided")) == 1
    winner = next(u for u, code in codes.items() if code == 200)
    won_with = dict(zip(("mgr1", "mgr2"), decisions))[winner]
    if won_with == "approve":
        assert steps == ["approved", "pending", "waiting"] and len(api.events("approval.requested")) == 2
    else:
        assert steps == ["rejected", "waiting", "waiting"]
        assert api.get(f"/v1/quotes/{q['id']}", REP).json["status"] == "rejected"

def test_two_general_managers_racing_on_step_two(pg_api):
    api = pg_api
    seed_products(api)
    opp = opportunity(api)
    q = quote(api, opp["id"], discount="25")
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    api.post(f"/v1/approvals/{a['id']}/decision", MGR, {"decision": "approve"})
    # step 2 (general_manager): two general managers at once
    gm2 = ("gm2", ("general_manager",), None)
    codes = race(api, a["id"], [GM, gm2], ["approve", "approve"])
    assert sorted(codes.values()) == [200, 409]
    body = api.get(f"/v1/approvals/{a['id']}", ADMIN).json
    assert body["current_step"] == 3 and [s["status"] for s in body["steps"]] == ["approved", "approved", "pending"]


@pytest.mark.parametrize("round_", range(3))
def test_withdraw_racing_the_last_decision_never_deadlocks(pg_api, round_):
    api = pg_api
    seed_products(api)
    opp = opportunity(api)
    q = quote(api, opp["id"], discount="15")  # one step: the decision would finish the request
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    barrier = threading.Barrier(2)
    codes = {}

    def approve():
        barrier.wait()
        codes["approve"] = api.post(f"/v1/approvals/{a['id']}/decision", MGR, {"decision": "approve"}).status_code

    def withdraw():
        barrier.wait()
        codes["withdraw"] = api.post(f"/v1/approvals/{a['id']}/withdraw", REP).status_code

    threads = [threading.Thread(target=approve), threading.Thread(target=withdraw)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes.values()) == [200, 409], codes
    status = api.get(f"/v1/quotes/{q['id']}", REP).json["status"]
    assert status == ("approved" if codes["approve"] == 200 else "withdrawn")
