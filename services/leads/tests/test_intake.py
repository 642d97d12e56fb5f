"""Intake through the API on SQLite and PostgreSQL: ownership, routing, normalisation, dedupe."""
from sqlalchemy import func, select

from leads.models import lead_history, leads

LEAD = {"name": "王先生", "company": "杭州某某科技有限公司", "phone": "138-0013-8000", "email": "Wang@Example.com",
        "province": "浙江", "city": "杭州", "industry": "software", "source": "website"}


def test_a_rep_keeps_what_they_enter(env):
    r = env.post("/v1/leads", {**LEAD, "source": "visit"}, env.rep("rep1"))
    assert r.status_code == 201, r.json
    lead = r.json
    assert lead["owner_id"] == "rep1" and lead["status"] == "new" and lead["phone"] == "+8613800138000"
    assert lead["email"] == "wang@example.com" and 0 <= lead["score"] <= 100 and lead["tier"] in "ABCD"
    types = [e["type"] for e in env.events()]
    assert types == ["lead.created"]


def test_anybody_else_routes_and_no_rule_pools(env):
    r = env.post("/v1/leads", LEAD, env.manager())
    assert r.status_code == 201 and r.json["owner_id"] is None and r.json["status"] == "pooled"
    env.team([{"user_id": "rep1", "name": "Rep One"}])
    r = env.post("/v1/leads", {**LEAD, "phone": "13900139000", "email": None, "company": None}, env.manager())
    assert r.json["owner_id"] == "rep1" and r.json["owner_name"] == "Rep One" and r.json["status"] == "new"
    assigned = env.events("lead.assigned")
    assert len(assigned) == 1 and assigned[0]["payload"]["reason"] == "auto"


def test_phone_or_email_required_and_bad_values_are_422(env):
    r = env.post("/v1/leads", {"name": "x"}, env.rep())
    assert r.status_code == 422 and "phone" in r.json["errors"]
    r = env.post("/v1/leads", {"phone": "12", "email": "nope"}, env.rep())
    assert r.status_code == 422 and set(r.json["errors"]) == {"phone", "email"}
    r = env.post("/v1/leads", {"phone": "13800138000", "source": "telepathy"}, env.rep())
    assert r.status_code == 422 and "source" in r.json["errors"]
    with env.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar_one() == 0


def test_duplicates_on_phone_email_and_company_city(env):
    first = env.post("/v1/leads", LEAD, env.rep("rep1")).json
    for variant, on in [({"phone": "+86 13800138000", "email": None, "company": None}, "phone"),
                        ({"phone": "8613800138000", "email": None, "company": None}, "phone"),
                        ({"phone": None, "email": "WANG@example.com", "company": None}, "email"),
                        ({"phone": "13700137000", "email": None, "company": "杭州某某科技 有限公司"}, "company")]:
        r = env.post("/v1/leads", {**LEAD, **variant}, env.rep("rep2"))
        assert r.status_code == 409, (variant, r.json)
        assert r.json["duplicate_of"] == first["id"] and r.json["owner_name"] == "REP1" and r.json["matched_on"] == on
    # same company in another city is a different customer
    r = env.post("/v1/leads", {**LEAD, "phone": "13700137000", "email": None, "city": "宁波"}, env.rep("rep2"))
    assert r.status_code == 201
    hits = env.events("lead.duplicate_hit")
    assert len(hits) == 4 and hits[0]["payload"]["owner_id"] == "rep1" and hits[0]["payload"]["attempted_by"] == "rep2"
    r = env.client.get(f"/v1/leads/{first['id']}", headers=env.rep("rep1"))
    assert r.json["duplicate_hits"] == 4
    with env.rt.engine.connect() as c:
        kinds = c.execute(select(lead_history.c.kind).where(lead_history.c.lead_id == int(first["id"]))).scalars().all()
    assert kinds.count("duplicate_hit") == 4
    assert len(env.events("lead.created")) == 2


def test_edit_renormalises_rescored_and_checks_duplicates(env):
    a = env.post("/v1/leads", LEAD, env.rep("rep1")).json
    b = env.post("/v1/leads", {"phone": "13900139000"}, env.rep("rep1")).json
    r = env.client.patch(f"/v1/leads/{b['id']}", json={"phone": "+86 138 0013 8000"}, headers=env.rep("rep1"))
    assert r.status_code == 409 and r.json["duplicate_of"] == a["id"]
    r = env.client.patch(f"/v1/leads/{b['id']}", json={"email": "B@x.com", "name": "B", "company": "乙公司"},
                         headers=env.rep("rep1"))
    assert r.status_code == 200 and r.json["email"] == "b@x.com" and r.json["score"] > b["score"]
    # the old phone key still belongs to b; changing it frees the old number
    r = env.client.patch(f"/v1/leads/{b['id']}", json={"phone": "13600136000"}, headers=env.rep("rep1"))
    assert r.status_code == 200
    assert env.post("/v1/leads", {"phone": "13900139000"}, env.rep("rep2")).status_code == 201
