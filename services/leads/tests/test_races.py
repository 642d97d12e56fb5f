"""Races settled by PostgreSQL: one phone posted 20 times at once, one pooled lead claimed by ten reps
at once."""
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from leads.models import lead_keys, leads

pytestmark = pytest.mark.postgres


def run_at_once(n, fn):
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


def test_twenty_simultaneous_posts_of_one_phone_make_one_lead(pg):
    forms = ["138-0013-8000", "+86 13800138000", "8613800138000", "13800138000"]
    headers = [pg.rep(f"rep{i}") for i in range(20)]

    def post(i):
        return pg.app.test_client().post("/v1/leads", json={"phone": forms[i % 4], "name": f"n{i}"},
                                         headers=headers[i])

    results = run_at_once(20, post)
    codes = Counter(r.status_code for r in results)
    assert codes == {201: 1, 409: 19}, [r.json for r in results if r.status_code not in (201, 409)]
    winner = next(r.json for r in results if r.status_code == 201)
    assert all(r.json["duplicate_of"] == winner["id"] for r in results if r.status_code == 409)
    with pg.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar_one() == 1
        assert c.execute(select(func.count()).select_from(lead_keys)).scalar_one() == 1
        assert c.execute(select(leads.c.duplicate_hits)).scalar_one() == 19


def test_ten_simultaneous_claims_one_winner(pg):
    lead = pg.post("/v1/leads", {"phone": "13800138000"}, pg.manager()).json
    assert lead["status"] == "pooled"
    headers = [pg.rep(f"rep{i}") for i in range(10)]
    results = run_at_once(10, lambda i: pg.app.test_client().post(f"/v1/leads/{lead['id']}/claim", headers=headers[i]))
    codes = Counter(r.status_code for r in results)
    assert codes == {200: 1, 409: 9}
    winner = next(r.json for r in results if r.status_code == 200)
    with pg.rt.engine.connect() as c:
        assert c.execute(select(leads.c.owner_id)).scalar_one() == winner["owner_id"]
    assert len(pg.events("lead.assigned")) == 1


def test_one_rep_claiming_in_parallel_stays_within_the_daily_limit(pg):
    assert pg.client.put("/v1/pool-policy", json={"daily_claim_limit": 2}, headers=pg.manager()).status_code == 200
    ids = [pg.post("/v1/leads", {"phone": f"1380013800{i}"}, pg.manager()).json["id"] for i in range(6)]
    h = pg.rep("rep1")
    results = run_at_once(6, lambda i: pg.app.test_client().post(f"/v1/leads/{ids[i]}/claim", headers=h))
    codes = Counter(r.status_code for r in results)
    assert codes == {200: 2, 409: 4}, [r.json for r in results]
    assert {r.json["reason"] for r in results if r.status_code == 409} == {"daily_limit"}
    with pg.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads).where(leads.c.owner_id == "rep1")).scalar_one() == 2
