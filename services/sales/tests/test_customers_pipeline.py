"""Customers by hand (dedupe), who sees what, PATCH with revisions, opportunity stages, products."""
from sales.testing import ADMIN, FIN, GM, MGR, OPS, REP, REP2, WEST_MGR, WEST_REP, opportunity


def new(api, who=REP, **kw):
    body = {"name": "Li Ming", "company": "Blue Sky", "city": "Suzhou", "phone": "+86 139 1111 2222",
            "email": "li@bluesky.example", **kw}
    return api.post("/v1/customers", who, body)


def test_manual_entry_with_dedupe_on_phone_email_company_city(api):
    r = new(api)
    assert r.status_code == 201, r.json
    assert r.json["owner_id"] == "rep1" and r.json["team_id"] == "east" and r.json["source"] == "manual"
    r = new(api, REP2, phone="13911112222", email="other@x.example", company="Other")
    assert r.status_code == 409 and r.json["matched_on"] == "phone" and "duplicate_of" not in r.json
    r = new(api, MGR, phone=None, email="LI@BlueSky.example", company="Other")
    assert r.status_code == 409 and r.json["matched_on"] == "email" and r.json["duplicate_of"] == 1
    r = new(api, phone="1", email=None, company="blue  sky", city="SUZHOU")
    assert r.status_code == 409 and r.json["matched_on"] == "company"
    assert new(api, phone="2", email=None, company="Blue Sky", city="Wuxi").status_code == 201
    assert api.post("/v1/customers", OPS, {"name": "x"}).status_code == 403
    assert api.post("/v1/customers", REP, {"name": ""}).status_code == 422
    assert api.post("/v1/customers", REP, {"name": "x", "email": "not-an-email"}).status_code == 422


def test_who_sees_which_customers(api):
    api.deliver("lead.converted", __import__("sales.testing", fromlist=["x"]).converted("L1", "rep1", "east"))
    new(api, REP2, phone="1", email="a@b.example", company="B")
    new(api, WEST_REP, phone="2", email="c@d.example", company="C")
    ids = lambda who: sorted(c["owner_id"] for c in api.get("/v1/customers", who).json)  # noqa: E731
    assert ids(REP) == ["rep1"] and ids(REP2) == ["rep2"] and ids(WEST_REP) == ["rep9"]
    assert ids(MGR) == ["rep1", "rep2"] and ids(WEST_MGR) == ["rep9"]
    assert ids(FIN) == ids(ADMIN) == ids(GM) == ["rep1", "rep2", "rep9"]
    assert ids(OPS) == []
    assert api.get("/v1/customers/1", REP2).status_code == 404
    assert api.get("/v1/customers/999", ADMIN).status_code == 404


def test_patch_bumps_the_revision_and_emits_customer_updated(api):
    cid = new(api).json["id"]
    r = api.patch(f"/v1/customers/{cid}", REP, {"industry": "finance", "birthday": "1990-01-31"})
    assert r.status_code == 200 and r.json["revision"] == 2 and r.json["industry"] == "finance"
    assert api.patch(f"/v1/customers/{cid}", REP, {"industry": "finance"}).json["revision"] == 2  # no change
    assert api.patch(f"/v1/customers/{cid}", REP, {"owner_id": "rep2"}).status_code == 403
    assert api.patch(f"/v1/customers/{cid}", REP2, {"industry": "x"}).status_code == 404
    assert api.patch(f"/v1/customers/{cid}", REP, {"churn_risk": True}).status_code == 422
    r = api.patch(f"/v1/customers/{cid}", MGR, {"owner_id": "rep2"})
    assert r.status_code == 200 and r.json["revision"] == 3
    revs = [e["payload"]["revision"] for e in api.events() if e["type"].startswith("customer.")]
    assert revs == [1, 2, 3]
    assert api.get(f"/v1/customers/{cid}", REP).status_code == 404 and api.get(f"/v1/customers/{cid}", REP2).status_code == 200


def test_opportunity_stages_and_lost_reason(api):
    opp = opportunity(api)
    url = f"/v1/opportunities/{opp['id']}"
    assert opp["probability"] == "0.10"
    for stage in ("needs_analysis", "proposal", "negotiation"):
        r = api.patch(url, REP, {"stage": stage})
        assert r.status_code == 200 and r.json["stage"] == stage
    r = api.patch(url, REP, {"stage": "lost"})
    assert r.status_code == 422 and "lost_reason" in r.json["errors"]
    assert api.patch(url, REP, {"stage": "nowhere"}).status_code == 422
    assert api.patch(url, WEST_REP, {"stage": "won"}).status_code == 404
    r = api.patch(url, REP, {"stage": "lost", "lost_reason": "price"})
    assert r.status_code == 200 and r.json["probability"] == "0"
    assert api.patch(url, REP, {"stage": "proposal"}).status_code == 409
    assert [o["id"] for o in api.get("/v1/opportunities?stage=lost&owner=rep1", MGR).json] == [opp["id"]]
    assert api.get("/v1/opportunities?stage=won", MGR).json == []


def test_products(api):
    assert api.post("/v1/products", REP, {"sku": "A", "name": "A", "list_price": "1.00", "currency": "CNY"}
                    ).status_code == 403
    r = api.post("/v1/products", ADMIN, {"sku": "A", "name": "A", "list_price": "1.005", "currency": "CNY"})
    assert r.status_code == 422 and "list_price" in r.json["errors"]
    r = api.post("/v1/products", ADMIN, {"sku": "A", "name": "A", "list_price": "1.00", "currency": "XXX"})
    assert r.status_code == 422 and "currency" in r.json["errors"]
    r = api.post("/v1/products", ADMIN, {"sku": "A", "name": "A", "list_price": "99.90", "currency": "CNY"})
    assert r.status_code == 201 and r.json["list_price"] == "99.90" and r.json["active"] is True
    assert api.post("/v1/products", ADMIN, {"sku": "A", "name": "B", "list_price": "1", "currency": "CNY"}
                    ).status_code == 409
    r = api.patch(f"/v1/products/{r.json['id']}", ADMIN, {"active": False})
    assert r.json["active"] is False
    opp = opportunity(api)
    r = api.post("/v1/quotes", REP, {"opportunity_id": opp["id"], "currency": "CNY",
                                     "lines": [{"sku": "A", "quantity": "1"}]})
    assert r.status_code == 422 and "lines" in r.json["errors"]


def test_instants_carry_their_utc_offset(api):
    body = new(api).json
    assert body["created_at"] == "2026-03-02T09:00:00+00:00"
