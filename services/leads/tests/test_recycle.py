"""The recycle scheduler with a controlled clock: warning once, recycling once, not after a fresh
follow-up, not when locked, per-tier limits, and the previous owner's cooldown."""
import pytest

from crm_shared.scheduler import Scheduler
from leads.jobs import JOBS, recycle_leads


def own(env, user="rep1", phone="13800138000", **kw):
    r = env.post("/v1/leads", {"phone": phone, **kw}, env.rep(user))
    assert r.status_code == 201
    return r.json["id"]


def kinds(env):
    return [e["type"] for e in env.events() if e["type"] in ("lead.recycle_warning", "lead.recycled")]


def test_warns_once_then_recycles_once(env):
    lead = own(env)
    env.clock.advance(days=4, hours=23)
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 0}
    env.clock.advance(hours=2)  # 5 days + 1 h: within 2 days of the 7-day limit
    assert recycle_leads(env.rt) == {"warned": 1, "recycled": 0}
    env.clock.advance(hours=1)
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 0}
    warning = env.events("lead.recycle_warning")[0]["payload"]
    assert warning["owner_id"] == "rep1" and warning["rule"] == "no_follow_up"
    assert warning["recycle_at"].startswith("2026-03-09T02:00:00")
    env.clock.advance(days=2)
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 1}
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 0}
    assert kinds(env) == ["lead.recycle_warning", "lead.recycled"]
    recycled = env.events("lead.recycled")[0]["payload"]
    assert recycled["previous_owner_id"] == "rep1" and recycled["owner_id"] is None
    r = env.client.get(f"/v1/leads/{lead}", headers=env.admin())
    assert r.json["status"] == "pooled" and r.json["owner_id"] is None


def test_a_fresh_follow_up_resets_the_clock(env):
    lead = own(env)
    env.clock.advance(days=6)
    assert recycle_leads(env.rt)["warned"] == 1
    r = env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "call", "outcome": "interested"}, env.rep())
    assert r.status_code == 201
    env.clock.advance(days=2)  # 8 days after assignment, 2 after the follow-up
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 0}
    env.clock.advance(days=3, hours=1)  # 5 days + 1 h after the follow-up: a new warning
    assert recycle_leads(env.rt) == {"warned": 1, "recycled": 0}
    env.clock.advance(days=2)
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 1}


def test_locked_leads_are_never_recycled(env):
    lead = own(env)
    assert env.post(f"/v1/leads/{lead}/lock", headers=env.rep()).status_code == 200
    env.clock.advance(days=60)
    assert recycle_leads(env.rt) == {"warned": 0, "recycled": 0}
    env.client.delete(f"/v1/leads/{lead}/lock", headers=env.rep())
    assert recycle_leads(env.rt)["recycled"] == 1


def test_no_conversion_limit_even_with_follow_ups(env):
    lead = own(env)
    for _ in range(6):
        env.clock.advance(days=4, hours=23)
        assert env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "wechat"}, env.rep()).status_code == 201
        recycle_leads(env.rt)
    assert env.client.get(f"/v1/leads/{lead}", headers=env.rep()).json["owner_id"] == "rep1"  # day 29 and 18 h
    env.clock.advance(hours=7)
    assert recycle_leads(env.rt)["recycled"] == 1
    assert env.events("lead.recycled")[0]["payload"]["rule"] == "no_conversion"


def test_tier_a_is_held_longer(env):
    env.client.put("/v1/pool-policy", json={"tier_days": {"A": {"no_follow_up": 14}}}, headers=env.manager())
    rich = {"name": "N", "email": "n@x.com", "company": "C", "city": "杭州", "industry": "i", "source": "referral"}
    a = own(env, **rich)
    b = own(env, phone="13900139000")
    assert env.client.get(f"/v1/leads/{a}", headers=env.rep()).json["tier"] == "A"
    env.clock.advance(days=8)
    assert recycle_leads(env.rt)["recycled"] == 1
    assert env.client.get(f"/v1/leads/{a}", headers=env.rep()).json["owner_id"] == "rep1"
    pooled = env.client.get(f"/v1/leads/{b}", headers=env.rep()).json
    assert pooled["status"] == "pooled" and pooled["masked"] is True
    assert env.client.get("/v1/pool", headers=env.rep()).json["total"] == 1


def test_previous_owner_waits_out_the_cooldown(env):
    lead = own(env)
    env.clock.advance(days=7, minutes=1)
    assert recycle_leads(env.rt)["recycled"] == 1
    r = env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep1"))
    assert r.status_code == 409 and r.json["reason"] == "cooldown"
    env.clock.advance(days=3)
    assert env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep1")).status_code == 200


def test_another_rep_may_claim_a_recycled_lead_at_once(env):
    lead = own(env)
    env.clock.advance(days=8)
    recycle_leads(env.rt)
    r = env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep2"))
    assert r.status_code == 200 and r.json["status"] == "new"
    hist = [h["kind"] for h in env.client.get(f"/v1/leads/{lead}/history", headers=env.rep("rep2")).json["items"]]
    assert hist == ["created", "assigned", "recycled", "claimed"]  # no scan ran during the warning days


@pytest.mark.postgres
def test_the_worker_scheduler_runs_the_job_under_its_lock(pg):
    own(pg)
    pg.clock.advance(days=8)
    assert [j.name for j in JOBS] == ["recycle_leads"]
    assert Scheduler(pg.rt, JOBS).run_job(JOBS[0]) is True
    assert Scheduler(pg.rt, JOBS).run_job(JOBS[0]) is True
    assert kinds(pg) == ["lead.recycled"]
