"""Who sees what: reps their own (404 otherwise), managers their team's, admin all; full contact
data of someone else's lead is written to the access log."""
from sqlalchemy import select

from leads.models import access_log


def setup(env):
    env.team([{"user_id": "rep1", "name": "Rep One"}, {"user_id": "rep2", "name": "Rep Two"}], code="east",
             rule={"province": ["浙江"]})
    env.team([{"user_id": "rep9", "name": "Rep Nine"}], code="west", name="West", rule={"province": ["四川"]},
             priority=20)
    a = env.post("/v1/leads", {"phone": "13800138000", "email": "a@x.com", "province": "浙江"}, env.admin()).json
    w = env.post("/v1/leads", {"phone": "13900139000", "province": "四川"}, env.admin()).json
    return a, w


def test_reps_see_only_their_own(env):
    a, w = setup(env)
    assert a["owner_id"] == "rep1" and w["owner_id"] == "rep9"
    assert env.client.get(f"/v1/leads/{a['id']}", headers=env.rep("rep1")).status_code == 200
    for url in (f"/v1/leads/{a['id']}", f"/v1/leads/{a['id']}/history", f"/v1/leads/{a['id']}/follow-ups"):
        assert env.client.get(url, headers=env.rep("rep2")).status_code == 404
    assert env.client.patch(f"/v1/leads/{a['id']}", json={"name": "x"}, headers=env.rep("rep2")).status_code == 404
    assert env.post(f"/v1/leads/{a['id']}/release", {"reason": "x"}, env.rep("rep2")).status_code == 404
    mine = env.client.get("/v1/leads", headers=env.rep("rep1")).json
    assert [i["id"] for i in mine["items"]] == [a["id"]] and mine["items"][0]["phone"] == "+8613800138000"
    assert env.client.get("/v1/leads", headers=env.rep("rep2")).json["total"] == 0


def test_managers_see_their_team_and_full_views_are_logged(env):
    a, w = setup(env)
    listed = env.client.get("/v1/leads", headers=env.manager("mgr1", "east")).json
    assert [i["id"] for i in listed["items"]] == [a["id"]] and listed["items"][0]["phone"] == "138****8000"
    assert env.client.get(f"/v1/leads/{w['id']}", headers=env.manager("mgr1", "east")).status_code == 404
    r = env.client.get(f"/v1/leads/{a['id']}", headers=env.manager("mgr1", "east"))
    assert r.json["phone"] == "+8613800138000" and r.json["masked"] is False
    r = env.client.get(f"/v1/leads/{w['id']}", headers=env.admin())
    assert r.json["phone"] == "+8613900139000"
    env.client.get(f"/v1/leads/{a['id']}", headers=env.rep("rep1"))  # the owner: not logged
    with env.rt.engine.connect() as c:
        rows = c.execute(select(access_log.c.user_id, access_log.c.lead_id, access_log.c.fields)
                         .order_by(access_log.c.id)).all()
    assert [(u, str(lid), f) for u, lid, f in rows] == [("mgr1", a["id"], "phone,email"), ("admin", w["id"], "phone")]
    log = env.client.get("/v1/access-log", headers=env.admin()).json
    assert log["total"] == 2 and log["items"][0]["fields"] == "phone"
    assert env.client.get("/v1/access-log", headers=env.manager()).status_code == 403


def test_pooled_leads_are_masked_to_reps(env):
    r = env.post("/v1/leads", {"phone": "13800138000", "email": "li@x.com"}, env.admin()).json
    got = env.client.get(f"/v1/leads/{r['id']}", headers=env.rep("rep5")).json
    assert got["phone"] == "138****8000" and got["email"] == "l***@x.com" and got["masked"] is True


def test_roles_for_configuration(env):
    assert env.post("/v1/teams", {"name": "T", "strategy": "round_robin"}, env.rep()).status_code == 403
    assert env.client.put("/v1/pool-policy", json={"lock_quota": 2}, headers=env.rep()).status_code == 403
    assert env.post("/v1/campaigns", {"name": "C", "source": "website", "currency": "CNY"}, env.rep()).status_code == 403
    assert env.client.get("/v1/leads").status_code == 401
