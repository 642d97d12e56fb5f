"""Follow-ups, status transitions, conversion, disqualification, and the history."""
from decimal import Decimal


def own(env, user="rep1", **kw):
    r = env.post("/v1/leads", {"phone": "13800138000", "name": "Li", "email": "li@x.com", "referrer_customer_id": "c9",
                               **kw}, env.rep(user))
    assert r.status_code == 201
    return r.json["id"]


def test_follow_up_only_by_owner_and_moves_new_to_contacted(env):
    lead = own(env)
    assert env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "call"}, env.rep("rep2")).status_code == 404
    r = env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "fax"}, env.rep())
    assert r.status_code == 422 and "channel" in r.json["errors"]
    r = env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "visit", "note": "met", "outcome": "interested",
                                                  "next_follow_up_at": "2026-03-05T02:00:00+00:00"}, env.rep())
    assert r.status_code == 201, r.json
    got = env.client.get(f"/v1/leads/{lead}", headers=env.rep()).json
    assert got["status"] == "contacted" and got["last_follow_up_at"].startswith("2026-03-02T02:00")
    ev = env.events("lead.followed_up")[0]["payload"]
    assert ev["channel"] == "visit" and ev["next_follow_up_at"].startswith("2026-03-05T02:00")
    items = env.client.get(f"/v1/leads/{lead}/follow-ups", headers=env.rep()).json["items"]
    assert [i["outcome"] for i in items] == ["interested"]


def test_illegal_transitions_are_409(env):
    lead = own(env)
    r = env.post(f"/v1/leads/{lead}/status", {"status": "qualified"}, env.rep())
    assert r.status_code == 409
    r = env.post(f"/v1/leads/{lead}/convert", {"opportunity_name": "X"}, env.rep())
    assert r.status_code == 409
    assert env.post(f"/v1/leads/{lead}/status", {"status": "contacted"}, env.rep()).json["status"] == "contacted"
    assert env.post(f"/v1/leads/{lead}/status", {"status": "contacted"}, env.rep()).status_code == 409
    assert env.post(f"/v1/leads/{lead}/status", {"status": "qualified"}, env.rep()).json["status"] == "qualified"
    assert env.post(f"/v1/leads/{lead}/status", {"status": "converted"}, env.rep()).status_code == 422


def test_convert_emits_contact_owner_campaign_and_referrer(env):
    camp = env.post("/v1/campaigns", {"name": "Expo", "source": "exhibition", "currency": "CNY"}, env.manager()).json
    lead = own(env, campaign_id=int(camp["id"]))
    env.post(f"/v1/leads/{lead}/status", {"status": "contacted"}, env.rep())
    env.post(f"/v1/leads/{lead}/status", {"status": "qualified"}, env.rep())
    r = env.post(f"/v1/leads/{lead}/convert", {"opportunity_name": "ERP rollout", "expected_amount": "120000.50",
                                               "currency": "CNY"}, env.rep())
    assert r.status_code == 200 and r.json["status"] == "converted"
    ev = env.events("lead.converted")[0]["payload"]
    assert ev["contact"] == {"name": "Li", "phone": "+8613800138000", "email": "li@x.com"}
    assert ev["owner_id"] == "rep1" and ev["campaign_id"] == camp["id"] and ev["referrer_customer_id"] == "c9"
    assert Decimal(ev["expected_amount"]) == Decimal("120000.50") and ev["opportunity_name"] == "ERP rollout"
    assert env.post(f"/v1/leads/{lead}/disqualify", {"reason": "late"}, env.rep()).status_code == 409


def test_disqualify_with_reason_from_any_open_status(env):
    lead = own(env)
    assert env.post(f"/v1/leads/{lead}/disqualify", {}, env.rep()).status_code == 422
    r = env.post(f"/v1/leads/{lead}/disqualify", {"reason": "no budget"}, env.rep())
    assert r.status_code == 200 and r.json["status"] == "disqualified" and r.json["disqualify_reason"] == "no budget"
    assert env.events("lead.disqualified")[0]["payload"]["reason"] == "no budget"
    assert env.post(f"/v1/leads/{lead}/follow-ups", {"channel": "call"}, env.rep()).status_code == 409


def test_history_in_time_order_with_who_and_why(env):
    env.team([{"user_id": "rep1", "name": "Rep One"}, {"user_id": "rep2", "name": "Rep Two"}])
    lead = env.post("/v1/leads", {"phone": "13800138000", "source": "website"}, env.manager()).json
    assert lead["owner_id"] == "rep1"
    env.clock.advance(hours=1)
    env.post(f"/v1/leads/{lead['id']}/follow-ups", {"channel": "call", "outcome": "busy"}, env.rep("rep1"))
    env.clock.advance(hours=1)
    env.post(f"/v1/leads/{lead['id']}/release", {"reason": "wrong region"}, env.rep("rep1"))
    env.clock.advance(hours=1)
    env.post(f"/v1/leads/{lead['id']}/claim", headers=env.rep("rep2"))
    env.clock.advance(hours=1)
    env.post(f"/v1/leads/{lead['id']}/assign", {"user_id": "rep1", "reason": "back to rep1"}, env.manager())
    hist = env.client.get(f"/v1/leads/{lead['id']}/history", headers=env.manager()).json["items"]
    assert [(h["kind"], h["actor_id"], h["from_owner_id"], h["to_owner_id"]) for h in hist] == [
        ("created", "mgr1", None, None), ("assigned", "mgr1", None, "rep1"), ("followed_up", "rep1", None, None),
        ("released", "rep1", "rep1", None), ("claimed", "rep2", None, "rep2"), ("transferred", "mgr1", "rep2", "rep1")]
    assert hist[3]["reason"] == "wrong region" and hist[5]["reason"] == "back to rep1"
    assert [h["at"][11:16] for h in hist] == ["02:00", "02:00", "03:00", "04:00", "05:00", "06:00"]
