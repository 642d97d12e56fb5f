"""The staff directory GET /v1/people: names, roles and team of users for any signed-in colleague;
never contact data, never customers; bad queries answered field by field."""
from __future__ import annotations

SECRET_MAIL, SECRET_PHONE = "zhao.secret@example.com", "+8613912345678"


def _staff(env):
    env.recipient("rep1", name="李雷", roles=["sales_rep"], team_id="east", mobile=SECRET_PHONE)
    env.recipient("rep2", name="韩梅梅", roles=["sales_rep"], team_id="east")
    env.recipient("mgr1", name="王强", roles=["sales_manager"], team_id="east")
    env.recipient("rep9", name="Maria Garcia", roles=["sales_rep"], team_id="west", email=SECRET_MAIL)
    env.recipient("agent1", name="刘洋", roles=["service_agent"])
    # a customer, from sales' events: a recipient too, but not a colleague
    env.publish("customer.created", {"customer_id": "c1", "name": "Zhao Customer", "owner_id": "rep1",
                                     "team_id": "east", "phone": "13800000000"})


def test_people_by_id_show_names_roles_and_team_only(env_db):
    env = env_db
    _staff(env)
    r = env.client.get("/v1/people?id=rep1&id=agent1&id=nobody&id=customer:c1&id=rep1",
                       headers=env.headers("agent2", roles=("service_agent",), team=None))
    assert r.status_code == 200, r.json
    assert r.json == [{"id": "agent1", "name": "刘洋", "roles": ["service_agent"], "team_id": None},
                      {"id": "rep1", "name": "李雷", "roles": ["sales_rep"], "team_id": "east"}]
    # no contact data and no customer, whatever is asked
    everyone = env.client.get("/v1/people", headers=env.headers("fin1", roles=("finance",), team=None))
    assert everyone.status_code == 200
    assert [p["id"] for p in everyone.json] == ["agent1", "mgr1", "rep1", "rep2", "rep9"]
    text = everyone.get_data(as_text=True)
    for secret in (SECRET_MAIL, SECRET_PHONE, "Zhao Customer", "customer:", "email", "mobile", "birthday"):
        assert secret not in text


def test_people_pages_and_filters(env_db):
    env = env_db
    _staff(env)
    h = env.headers("rep1")

    def ids(query):
        r = env.client.get("/v1/people" + query, headers=h)
        assert r.status_code == 200, r.json
        return [p["id"] for p in r.json]

    assert ids("?limit=2") == ["agent1", "mgr1"]
    assert ids("?limit=2&after=mgr1") == ["rep1", "rep2"]
    assert ids("?limit=2&after=rep2") == ["rep9"]
    assert ids("?team_id=east") == ["mgr1", "rep1", "rep2"]
    assert ids("?role=sales_rep") == ["rep1", "rep2", "rep9"]
    assert ids("?role=sales_rep&limit=1&after=rep1") == ["rep2"]
    assert ids("?role=sales_rep&team_id=west") == ["rep9"]
    assert ids("?role=general_manager") == []
    # a change of name shows at once
    env.recipient("rep2", name="Han Meimei", roles=["sales_rep"], team_id="east")
    r = env.client.get("/v1/people?id=rep2", headers=h)
    assert r.json[0]["name"] == "Han Meimei"


def test_people_needs_a_token_and_rejects_bad_queries_field_by_field(env):
    _staff(env)
    assert env.client.get("/v1/people?id=rep1").status_code == 401
    h = env.headers("rep1")
    too_many = "&".join(f"id=u{i}" for i in range(101))
    cases = {
        f"?{too_many}": "id",
        "?id=" + "x" * 101: "id",
        "?id=": "id",
        "?id=a%01b": "id",
        "?limit=0": "limit",
        "?limit=501": "limit",
        "?limit=many": "limit",
        "?team_id=" + "t" * 65: "team_id",
        "?role=" + "r" * 41: "role",
    }
    for query, field in cases.items():
        r = env.client.get("/v1/people" + query, headers=h)
        assert r.status_code in (400, 422), (query, r.status_code)
        assert r.content_type.startswith("application/problem+json"), (query, r.content_type)
        assert field in r.json["errors"], (query, r.json)
    # exactly the cap is fine
    ok = "&".join(f"id=u{i}" for i in range(100))
    assert env.client.get("/v1/people?" + ok, headers=h).status_code == 200
