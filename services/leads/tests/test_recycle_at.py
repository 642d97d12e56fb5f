"""`recycle_at` in the lead representation: the time the recycle scan returns the lead to the pool,
by the scan's own rule (leads.domain.recycle.recycle_at, used by both), null for leads the scan does
not watch (pooled, locked, converted). The scan recycles exactly when the API said it would."""
from datetime import datetime, timedelta, timezone

from leads.domain import recycle
from leads.jobs import recycle_leads


def own(env, user="rep1", phone="13800138000", **kw):
    r = env.post("/v1/leads", {"phone": phone, **kw}, env.rep(user))
    assert r.status_code == 201, r.json
    return r.json


def at(s):
    return datetime.fromisoformat(s)


def lead(env, lead_id, who=None):
    return env.client.get(f"/v1/leads/{lead_id}", headers=who or env.rep()).json


def test_recycle_at_is_the_scans_time_and_the_scan_keeps_it(env):
    created = own(env)
    assigned = at(created["assigned_at"])
    assert at(created["recycle_at"]) == assigned + timedelta(days=7)  # the default: 7 days without follow-up
    assert [x["recycle_at"] for x in env.client.get("/v1/leads", headers=env.rep()).json["items"]] == \
        [created["recycle_at"]]
    env.clock.advance(days=5, hours=1)
    assert recycle_leads(env.rt)["warned"] == 1
    warning = env.events("lead.recycle_warning")[0]["payload"]
    assert at(warning["recycle_at"]) == at(created["recycle_at"])  # the warning names the same time
    # a follow-up two days later moves it: 7 days from the follow-up
    env.clock.advance(days=1)
    assert env.post(f"/v1/leads/{created['id']}/follow-ups", {"channel": "call"}, env.rep()).status_code == 201
    body = lead(env, created["id"])
    moved = at(body["recycle_at"])
    assert moved == at(body["last_follow_up_at"]) + timedelta(days=7)
    # the scan recycles at that time, not a minute before
    env.clock.set(moved - timedelta(minutes=1))
    assert recycle_leads(env.rt)["recycled"] == 0
    env.clock.advance(minutes=1)
    assert recycle_leads(env.rt)["recycled"] == 1
    pooled = lead(env, created["id"], env.admin())
    assert pooled["status"] == "pooled" and pooled["recycle_at"] is None
    assert env.client.get("/v1/pool", headers=env.rep("rep2")).json["items"][0]["recycle_at"] is None


def test_no_conversion_limit_lock_and_tier_policy(env):
    env.client.put("/v1/pool-policy", json={"tier_days": {"A": {"no_follow_up": 14}}}, headers=env.manager())
    rich = own(env, name="N", email="n@x.com", company="C", city="杭州", industry="i", source="referral")
    plain = own(env, phone="13900139000")
    assert rich["tier"] == "A" and plain["tier"] != "A"
    assert at(rich["recycle_at"]) == at(rich["assigned_at"]) + timedelta(days=14)
    assert at(plain["recycle_at"]) == at(plain["assigned_at"]) + timedelta(days=7)
    # locked: never recycled, no time; unlocked: back
    locked = env.post(f"/v1/leads/{plain['id']}/lock", headers=env.rep()).json
    assert locked["locked"] is True and locked["recycle_at"] is None
    assert env.client.delete(f"/v1/leads/{plain['id']}/lock", headers=env.rep()).json["recycle_at"] == \
        plain["recycle_at"]
    # follow-ups every few days: the 30-day no-conversion limit comes first
    for _ in range(6):
        env.clock.advance(days=4, hours=23)
        assert env.post(f"/v1/leads/{plain['id']}/follow-ups", {"channel": "wechat"}, env.rep()).status_code == 201
    assert at(lead(env, plain["id"])["recycle_at"]) == at(plain["assigned_at"]) + timedelta(days=30)


def test_the_function_the_scan_and_the_api_share():
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    pol = {"recycle_no_follow_up_days": 7, "recycle_no_conversion_days": 30, "tier_days": {"A": {"no_follow_up": 14}}}
    row = {"status": "contacted", "owner_id": "rep1", "locked": False, "assigned_at": now - timedelta(days=10),
           "last_follow_up_at": None, "tier": "B", "team_id": 3}
    assert recycle.recycle_at(row, pol) == now - timedelta(days=3)  # overdue: the next scan recycles it
    assert recycle.due(row, pol) == (now - timedelta(days=3), "no_follow_up")
    assert recycle.recycle_at({**row, "last_follow_up_at": now - timedelta(days=2)}, pol) == now + timedelta(days=5)
    assert recycle.due({**row, "assigned_at": now - timedelta(days=28), "last_follow_up_at": now - timedelta(days=1)},
                       pol) == (now + timedelta(days=2), "no_conversion")
    assert recycle.recycle_at({**row, "tier": "A"}, pol) == now + timedelta(days=4)
    # naive times (SQLite) are UTC
    assert recycle.recycle_at({**row, "assigned_at": (now - timedelta(days=10)).replace(tzinfo=None)}, pol) == \
        now - timedelta(days=3)
    asked = []
    assert recycle.recycle_at(row, lambda team: asked.append(team) or pol) == now - timedelta(days=3)
    assert asked == [3]
    for other in ({"locked": True}, {"status": "converted"}, {"status": "pooled", "owner_id": None},
                  {"owner_id": None}, {"assigned_at": None}, {"status": "disqualified"}):
        assert recycle.recycle_at({**row, **other}, lambda team: asked.append(team) or pol) is None
        assert recycle.due({**row, **other}, pol) is None
    assert asked == [3]  # the policy is not even loaded for a lead the scan does not watch
