"""The pool: masking, claim limits (daily, capacity, cooldown, embargo), release, locks, manual
assignment, and the ownership lookup."""


def pooled(env, phone="13800138000", **kw):
    r = env.post("/v1/leads", {"phone": phone, "email": f"li{phone[-5:]}@example.com", "name": "Li", **kw}, env.manager())
    assert r.status_code == 201 and r.json["status"] == "pooled", r.json
    return r.json["id"]


def test_pool_is_masked_and_filterable(env):
    pooled(env, city="杭州")
    pooled(env, "13900139000", city="宁波")
    r = env.client.get("/v1/pool?city=杭州", headers=env.rep())
    assert r.status_code == 200 and r.json["total"] == 1
    item = r.json["items"][0]
    assert item["phone"] == "138****8000" and item["email"] == "l***@example.com" and item["masked"] is True
    assert env.client.get("/v1/pool", headers=env.rep()).json["total"] == 2


def test_claim_then_others_get_409_and_release(env):
    lead = pooled(env)
    r = env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep1"))
    assert r.status_code == 200 and r.json["owner_id"] == "rep1" and r.json["status"] == "new"
    assert r.json["phone"] == "+8613800138000"  # the owner sees it in full
    assert env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep2")).status_code in (404, 409)
    assert env.post(f"/v1/leads/{lead}/release", {"reason": "not my region"}, env.rep("rep2")).status_code == 404
    r = env.post(f"/v1/leads/{lead}/release", {"reason": "not my region"}, env.rep("rep1"))
    assert r.status_code == 200 and r.json["status"] == "pooled"
    assert env.post(f"/v1/leads/{lead}/claim", headers=env.rep("rep2")).status_code == 200
    kinds = [h["kind"] for h in env.client.get(f"/v1/leads/{lead}/history", headers=env.rep("rep2")).json["items"]]
    assert kinds == ["created", "pooled", "claimed", "released", "claimed"]


def test_daily_claim_limit_counts_the_business_day(env):
    env.client.put("/v1/pool-policy", json={"daily_claim_limit": 2}, headers=env.manager())
    ids = [pooled(env, f"1380013800{i}") for i in range(4)]
    assert env.post(f"/v1/leads/{ids[0]}/claim", headers=env.rep()).status_code == 200
    assert env.post(f"/v1/leads/{ids[1]}/claim", headers=env.rep()).status_code == 200
    r = env.post(f"/v1/leads/{ids[2]}/claim", headers=env.rep())
    assert r.status_code == 409 and r.json["reason"] == "daily_limit"
    env.clock.advance(days=1)
    assert env.post(f"/v1/leads/{ids[2]}/claim", headers=env.rep()).status_code == 200


def test_capacity_limits_claims(env):
    env.team([{"user_id": "rep1", "name": "Rep One", "max_open_leads": 1}], rule={"province": ["nowhere"]})
    a, b = pooled(env), pooled(env, "13900139000")
    assert env.post(f"/v1/leads/{a}/claim", headers=env.rep()).status_code == 200
    r = env.post(f"/v1/leads/{b}/claim", headers=env.rep())
    assert r.status_code == 409 and r.json["reason"] == "capacity"


def test_new_entry_embargo_exempts_managers(env):
    env.client.put("/v1/pool-policy", json={"new_entry_embargo_hours": 2}, headers=env.manager())
    a, b = pooled(env), pooled(env, "13900139000")
    r = env.post(f"/v1/leads/{a}/claim", headers=env.rep())
    assert r.status_code == 409 and r.json["reason"] == "embargo"
    assert env.post(f"/v1/leads/{b}/claim", headers=env.manager()).status_code == 200
    env.clock.advance(hours=2)
    assert env.post(f"/v1/leads/{a}/claim", headers=env.rep()).status_code == 200


def test_lock_quota(env):
    env.client.put("/v1/pool-policy", json={"lock_quota": 1}, headers=env.manager())
    a = env.post("/v1/leads", {"phone": "13800138000"}, env.rep()).json["id"]
    b = env.post("/v1/leads", {"phone": "13900139000"}, env.rep()).json["id"]
    assert env.post(f"/v1/leads/{a}/lock", headers=env.rep()).json["locked"] is True
    r = env.post(f"/v1/leads/{b}/lock", headers=env.rep())
    assert r.status_code == 409 and r.json["reason"] == "lock_quota"
    assert env.client.delete(f"/v1/leads/{a}/lock", headers=env.rep()).json["locked"] is False
    assert env.post(f"/v1/leads/{b}/lock", headers=env.rep()).status_code == 200


def test_manual_assign_and_transfer_by_managers_only(env):
    env.team([{"user_id": "rep1", "name": "Rep One"}, {"user_id": "rep2", "name": "Rep Two"}],
             rule={"province": ["nowhere"]})
    lead = pooled(env)
    assert env.post(f"/v1/leads/{lead}/assign", {"user_id": "rep1", "reason": "x"}, env.rep("rep1")).status_code == 403
    r = env.post(f"/v1/leads/{lead}/assign", {"user_id": "rep1", "reason": "knows them"}, env.manager())
    assert r.status_code == 200 and r.json["owner_name"] == "Rep One"
    r = env.post(f"/v1/leads/{lead}/assign", {"user_id": "rep2", "reason": "rep1 left"}, env.manager())
    assert r.status_code == 200 and r.json["owner_id"] == "rep2"
    reasons = [e["payload"]["reason"] for e in env.events("lead.assigned")]
    assert reasons == ["manual", "transfer"]
    hist = env.client.get(f"/v1/leads/{lead}/history", headers=env.manager()).json["items"]
    assert [(h["kind"], h["from_owner_id"], h["to_owner_id"], h["reason"]) for h in hist[-2:]] == [
        ("assigned", None, "rep1", "knows them"), ("transferred", "rep1", "rep2", "rep1 left")]


def test_lookup_answers_any_rep_with_names_and_masks(env):
    owned = env.post("/v1/leads", {"phone": "13800138000", "company": "杭州某某科技有限公司", "city": "杭州",
                                   "email": "a@b.com"}, env.rep("rep1")).json
    pool_id = pooled(env, "13900139000")
    r = env.client.get("/v1/lookup?phone=138-0013-8000", headers=env.rep("rep2"))
    assert r.json["status"] == "owned"
    m = r.json["matches"][0]
    assert m["owner_name"] == "REP1" and m["phone"] == "138****8000" and m["lead_id"] is None
    r = env.client.get("/v1/lookup?company=杭州某某科技 有限公司", headers=env.rep("rep2"))
    assert r.json["status"] == "owned" and r.json["matches"][0]["matched_on"] == "company"
    r = env.client.get("/v1/lookup?phone=+8613900139000", headers=env.rep("rep2"))
    assert r.json["status"] == "pool" and r.json["matches"][0]["lead_id"] == pool_id
    assert env.client.get("/v1/lookup?email=new@x.com", headers=env.rep("rep2")).json == {"status": "unknown", "matches": []}
    assert env.client.get("/v1/lookup", headers=env.rep("rep2")).status_code == 422


def test_pool_total_is_counted_up_to_a_limit(env, monkeypatch):
    from leads.api import pool as pool_api
    monkeypatch.setattr(pool_api, "POOL_COUNT_LIMIT", 2)
    for i in range(3):
        pooled(env, f"1380013800{i}")
    r = env.client.get("/v1/pool?per_page=1", headers=env.rep()).json
    assert r["total"] == 2 and r["total_is_lower_bound"] is True and len(r["items"]) == 1
    monkeypatch.setattr(pool_api, "POOL_COUNT_LIMIT", 3)
    r = env.client.get("/v1/pool", headers=env.rep()).json
    assert r["total"] == 3 and r["total_is_lower_bound"] is False


def test_lead_list_total_is_counted_up_to_a_limit(env, monkeypatch):
    from leads.api import leads as leads_api
    monkeypatch.setattr(leads_api, "LIST_COUNT_LIMIT", 2)
    for i in range(3):
        r = env.post("/v1/leads", {"phone": f"1390013900{i}", "email": f"own{i}@example.com", "name": "Li"}, env.rep())
        assert r.status_code == 201 and r.json["owner_id"] == "rep1", r.json
    r = env.client.get("/v1/leads?per_page=1", headers=env.rep()).json
    assert r["total"] == 2 and r["total_is_lower_bound"] is True and len(r["items"]) == 1
    monkeypatch.setattr(leads_api, "LIST_COUNT_LIMIT", 3)
    r = env.client.get("/v1/leads", headers=env.rep()).json
    assert r["total"] == 3 and r["total_is_lower_bound"] is False and len(r["items"]) == 3


def test_a_bad_query_parameter_is_named_and_said_to_be_in_the_query_string(env):
    r = env.client.get("/v1/pool?per_page=many", headers=env.rep())
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.json
    assert r.json["detail"] == "The query string has invalid parameters." and "per_page" in r.json["errors"]
    # a body error still says the body
    r = env.post("/v1/leads", {"phone": "13900139000", "email": "not-an-address", "name": "Li"}, env.rep())
    assert r.status_code == 422 and r.json["detail"] == "The request body has invalid fields." and "email" in r.json["errors"]
