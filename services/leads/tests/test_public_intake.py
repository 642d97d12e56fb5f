"""Public intake by source key: no user token, routed, duplicates recorded but not revealed,
rate-limited per key."""


def make_source(env, **kw):
    r = env.post("/v1/sources", {"name": "Website form", "source": "website", **kw}, env.manager())
    assert r.status_code == 201, r.json
    return r.json


def test_a_form_posts_without_a_token_and_is_routed(env):
    env.team([{"user_id": "rep1", "name": "Rep One"}], rule={"source": ["website"]})
    src = make_source(env)
    assert src["key"].startswith("src_")
    r = env.client.post(f"/v1/intake/{src['key']}", json={"name": "Li", "phone": "13800138000"})
    assert r.status_code == 202 and r.json == {"status": "received"}
    lead = env.client.get("/v1/leads", headers=env.rep("rep1")).json["items"][0]
    assert lead["source"] == "website" and lead["owner_id"] == "rep1"
    # a duplicate looks the same to the form, but the owner hears of it
    r = env.client.post(f"/v1/intake/{src['key']}", json={"phone": "+86 138 0013 8000"})
    assert r.status_code == 202
    hit = env.events("lead.duplicate_hit")[0]["payload"]
    assert hit["owner_id"] == "rep1" and hit["attempted_source"] == "website"
    assert "key" not in env.client.get("/v1/sources", headers=env.manager()).json["items"][0]  # shown once only


def test_unknown_key_and_bad_input(env):
    assert env.client.post("/v1/intake/nope", json={"phone": "13800138000"}).status_code == 404
    src = make_source(env)
    r = env.client.post(f"/v1/intake/{src['key']}", json={"name": "no contact"})
    assert r.status_code == 422


def test_rate_limited_per_key_per_minute(env):
    a = make_source(env, rate_per_minute=3)
    b = make_source(env, name="Ads", source="ad_platform")
    codes = [env.client.post(f"/v1/intake/{a['key']}", json={"phone": f"1380013800{i}"}).status_code for i in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    r = env.client.post(f"/v1/intake/{a['key']}", json={"phone": "13800138009"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert env.client.post(f"/v1/intake/{b['key']}", json={"phone": "13900139000"}).status_code == 202
    env.clock.advance(minutes=1)
    assert env.client.post(f"/v1/intake/{a['key']}", json={"phone": "13800138009"}).status_code == 202
