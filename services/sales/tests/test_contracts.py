"""Contract lifecycle on a controlled clock (signing, order, expiring, expiry and churn, renewal),
order fulfilment, payment allocation, overdue alarms and aging buckets."""
from datetime import datetime, timezone

import pytest

from sales import jobs
from sales.testing import ADMIN, FIN, MGR, OPS, REP, REP2, WEST_REP, opportunity, quote, seed_products


def at(clock, y, m, d):
    clock.set(datetime(y, m, d, 9, 0, tzinfo=timezone.utc))


def signed_contract(api, lead="L1", owner=REP, start="2026-03-01", end="2027-02-28", plan=None, qty="10"):
    opp = opportunity(api, lead, owner=owner[0], team=owner[2],
                      contact={"phone": f"139{abs(hash(lead)) % 10**8:08d}", "email": f"{lead}@x.example"},
                      company=f"Company {lead}")
    q = quote(api, opp["id"], qty=qty, who=owner)
    assert api.post(f"/v1/quotes/{q['id']}/submit", owner).json["status"] == "approved"
    plan = plan or [{"due_date": "2026-03-10", "amount": "4000.00"}, {"due_date": "2026-04-10", "amount": "6000.00"}]
    r = api.post("/v1/contracts", owner, {"quote_id": q["id"], "start_date": start, "end_date": end,
                                          "payment_plan": plan})
    assert r.status_code == 201, r.json
    cid = r.json["id"]
    assert api.post(f"/v1/contracts/{cid}/submit", owner).json["status"] == "approved"
    r = api.post(f"/v1/contracts/{cid}/sign", owner, {"signed_on": "2026-03-02"})
    assert r.status_code == 200, r.json
    return r.json


@pytest.fixture
def products(api):
    seed_products(api)


def test_payment_plan_must_add_up_and_quote_must_be_approved(api, products):
    opp = opportunity(api)
    q = quote(api, opp["id"])
    body = {"quote_id": q["id"], "start_date": "2026-03-01", "end_date": "2027-02-28",
            "payment_plan": [{"due_date": "2026-03-10", "amount": "10000.00"}]}
    assert api.post("/v1/contracts", REP, body).status_code == 409  # draft quote
    api.post(f"/v1/quotes/{q['id']}/submit", REP)
    r = api.post("/v1/contracts", REP, {**body, "payment_plan": [{"due_date": "2026-03-10", "amount": "9999.99"}]})
    assert r.status_code == 422 and "payment_plan" in r.json["errors"]
    r = api.post("/v1/contracts", REP, {**body, "payment_plan": [{"due_date": "2026-03-10", "amount": "10000.001"}]})
    assert r.status_code == 422
    r = api.post("/v1/contracts", REP, {**body, "end_date": "2026-02-01"})
    assert r.status_code == 422 and "end_date" in r.json["errors"]
    r = api.post("/v1/contracts", REP, body)
    assert r.status_code == 201 and r.json["status"] == "draft" and r.json["amount"] == "10000.00"
    assert r.json["lead_id"] == "L1" and r.json["campaign_id"] == "C7"
    assert api.post(f"/v1/contracts/{r.json['id']}/sign", REP, {"signed_on": "2026-03-02"}).status_code == 409


def test_signing_emits_contract_signed_and_opens_an_order_that_ops_fulfils(api, products):
    c = signed_contract(api)
    assert c["status"] == "active" and c["signed_on"] == "2026-03-02"
    [ev] = api.events("contract.signed")
    p = ev["payload"]
    assert p["customer_id"] == str(c["customer_id"]) and p["owner_id"] == "rep1" and p["lead_id"] == "L1"
    assert p["campaign_id"] == "C7" and p["amount"] == "10000.00" and p["currency"] == "CNY"
    assert p["start_date"] == "2026-03-01" and p["products"] == [{"sku": "SEAT", "name": "Seat", "quantity": "10"}]
    assert api.get(f"/v1/opportunities/{c['opportunity_id']}", REP).json["stage"] == "won"
    assert api.post(f"/v1/contracts/{c['id']}/sign", REP, {"signed_on": "2026-03-02"}).status_code == 409
    [order] = api.get("/v1/orders?status=submitted", OPS).json
    assert order["contract_id"] == c["id"] and order["customer_id"] == c["customer_id"]
    assert len(api.events("order.submitted")) == 1
    oid = order["id"]
    assert api.post(f"/v1/orders/{oid}/start", REP).status_code == 403
    assert api.get(f"/v1/orders/{oid}", WEST_REP).status_code == 404
    assert api.post(f"/v1/orders/{oid}/fulfil", OPS, {}).status_code == 422  # a note is required
    assert api.post(f"/v1/orders/{oid}/start", OPS).json["status"] == "in_progress"
    assert api.post(f"/v1/orders/{oid}/start", OPS).status_code == 409
    r = api.post(f"/v1/orders/{oid}/fulfil", OPS, {"note": "10 seats activated, tenant acme"})
    assert r.status_code == 200 and r.json["status"] == "fulfilled" and r.json["handled_by"] == "ops1"
    [done] = api.events("order.fulfilled")
    assert done["payload"]["note"] == "10 seats activated, tenant acme"
    assert api.post(f"/v1/orders/{oid}/reject", OPS, {"reason": "late"}).status_code == 409
    assert api.get("/v1/orders?status=submitted", OPS).json == []
    assert [o["id"] for o in api.get("/v1/orders", REP).json] == [oid]


def test_order_rejected_back_to_the_rep(api, products):
    c = signed_contract(api)
    oid = api.get("/v1/orders", OPS).json[0]["id"]
    r = api.post(f"/v1/orders/{oid}/reject", OPS, {"reason": "customer tax id missing"})
    assert r.status_code == 200 and r.json["status"] == "rejected" and r.json["note"] == "customer tax id missing"
    assert api.get(f"/v1/orders/{oid}", REP).json["status"] == "rejected"
    assert c["id"] == r.json["contract_id"]


def test_payments_are_allocated_oldest_first(api, products):
    c = signed_contract(api)
    url = f"/v1/contracts/{c['id']}/payments"
    assert api.post(url, REP, {"amount": "1.00", "paid_on": "2026-03-05", "reference": "X"}).status_code == 403
    r = api.post(url, FIN, {"amount": "5000.00", "paid_on": "2026-03-05", "reference": "BANK-1"})
    assert r.status_code == 201, r.json
    plan = api.get(f"/v1/contracts/{c['id']}", REP).json["payment_plan"]
    assert r.json["allocations"] == [{"installment_id": plan[0]["id"], "amount": "4000.00"},
                                     {"installment_id": plan[1]["id"], "amount": "1000.00"}]
    assert [(i["paid"], i["outstanding"]) for i in plan] == [("4000.00", "0.00"), ("1000.00", "5000.00")]
    assert api.post(url, FIN, {"amount": "1.00", "paid_on": "2026-03-06", "reference": "BANK-1"}).status_code == 409
    r = api.post(url, FIN, {"amount": "5000.01", "paid_on": "2026-03-06", "reference": "BANK-2"})
    assert r.status_code == 422 and "amount" in r.json["errors"]
    assert api.post(url, FIN, {"amount": "0.10", "paid_on": "2026-03-06", "reference": "BANK-3"}).status_code == 201
    assert api.get(f"/v1/contracts/{c['id']}", REP).json["outstanding"] == "4999.90"
    evs = api.events("payment.received")
    assert [e["payload"]["amount"] for e in evs] == ["5000.00", "0.10"]
    assert evs[0]["payload"]["installment_ids"] == [str(plan[0]["id"]), str(plan[1]["id"])]
    assert len(api.get(url, REP).json) == 2


@pytest.mark.parametrize("amount", [0.1, 5000, 1e2, True])
def test_money_as_a_json_number_float_is_refused(api, products, amount):
    c = signed_contract(api)
    r = api.post(f"/v1/contracts/{c['id']}/payments", FIN, {"amount": amount, "paid_on": "2026-03-05",
                                                            "reference": "N"})
    if isinstance(amount, int) and not isinstance(amount, bool):
        assert r.status_code == 201 and r.json["amount"] == "5000.00"  # an integer is exact
    else:
        assert r.status_code == 422 and "amount" in r.json["errors"]
        assert api.get(f"/v1/contracts/{c['id']}/payments", FIN).json == []


def test_overdue_alarms_at_1_7_30_days_once_per_level(api, products, clock):
    c = signed_contract(api)
    rt = api.runtime
    at(clock, 2026, 3, 10)
    assert jobs.payments_overdue(rt) == 0  # due today is not overdue
    at(clock, 2026, 3, 11)
    assert jobs.payments_overdue(rt) == 1
    assert jobs.payments_overdue(rt) == 0
    at(clock, 2026, 3, 16)
    assert jobs.payments_overdue(rt) == 0
    at(clock, 2026, 3, 17)
    assert jobs.payments_overdue(rt) == 1
    at(clock, 2026, 4, 9)
    assert jobs.payments_overdue(rt) == 1  # 30 days
    days = [e["payload"]["days_overdue"] for e in api.events("payment.overdue")]
    assert days == [1, 7, 30]
    cust = api.get(f"/v1/customers/{c['customer_id']}", REP).json
    assert cust["churn_risk"] is True and "overdue" in cust["churn_reason"]
    at(clock, 2026, 5, 20)  # the second installment jumps straight past 30 days: one alarm, the highest level
    assert jobs.payments_overdue(rt) == 1
    assert api.events("payment.overdue")[-1]["payload"]["days_overdue"] == 40
    assert jobs.payments_overdue(rt) == 0


def test_receivables_aging_buckets(api, products, clock):
    plan = [{"due_date": d, "amount": a} for d, a in (("2026-01-01", "1000.00"), ("2026-02-01", "2000.00"),
                                                      ("2026-03-01", "3000.00"), ("2026-05-01", "3500.00"),
                                                      ("2026-07-01", "500.00"))]
    c = signed_contract(api, plan=plan, qty="10", start="2026-01-01", end="2026-12-31")
    api.post(f"/v1/contracts/{c['id']}/payments", FIN, {"amount": "500.00", "paid_on": "2026-03-01",
                                                        "reference": "P1"})
    at(clock, 2026, 5, 15)
    r = api.get("/v1/reports/receivables-aging", FIN)
    assert r.status_code == 200, r.json
    [row] = r.json["customers"]
    # 2026-01-01: 134 days (90+), 500 of 1000 paid; 02-01: 103 (90+); 03-01: 75 (61–90); 05-01: 14 (1–30); 07-01: current
    assert (row["90_plus"], row["61_90"], row["31_60"], row["1_30"], row["current"]) == \
        ("2500.00", "3000.00", "0", "3500.00", "500.00")
    assert row["total"] == "9500.00" and r.json["total"]["total"] == "9500.00"
    assert api.get("/v1/reports/receivables-aging", REP).status_code == 403


def test_expiring_once_then_expiry_churns_a_customer_without_renewal(api, products, clock):
    c = signed_contract(api, start="2026-03-01", end="2026-06-30")
    rt = api.runtime
    at(clock, 2026, 5, 30)
    assert jobs.contract_lifecycle(rt)["expiring"] == 0
    at(clock, 2026, 5, 31)  # 30 days before the end
    assert jobs.contract_lifecycle(rt)["expiring"] == 1
    assert jobs.contract_lifecycle(rt)["expiring"] == 0
    at(clock, 2026, 6, 10)
    assert jobs.contract_lifecycle(rt)["expiring"] == 0
    assert api.get(f"/v1/contracts/{c['id']}", REP).json["status"] == "expiring"
    assert len(api.events("contract.expiring")) == 1
    at(clock, 2026, 6, 30)
    assert jobs.contract_lifecycle(rt) == {"expiring": 0, "expired": 0, "churned": 0}
    at(clock, 2026, 7, 1)
    assert jobs.contract_lifecycle(rt) == {"expiring": 0, "expired": 1, "churned": 1}
    assert jobs.contract_lifecycle(rt) == {"expiring": 0, "expired": 0, "churned": 0}
    assert api.get(f"/v1/contracts/{c['id']}", REP).json["status"] == "expired"
    [ch] = api.events("customer.churned")
    assert ch["payload"]["customer_id"] == str(c["customer_id"]) and ch["payload"]["owner_id"] == "rep1"
    assert api.get(f"/v1/customers/{c['customer_id']}", REP).json["churn_risk"] is True


def test_renewal_keeps_the_customer(api, products, clock):
    c = signed_contract(api, start="2026-03-01", end="2026-06-30")
    rt = api.runtime
    at(clock, 2026, 6, 1)
    jobs.contract_lifecycle(rt)
    r = api.post(f"/v1/contracts/{c['id']}/renew", REP, {})
    assert r.status_code == 201, r.json
    new = r.json
    assert new["status"] == "draft" and new["predecessor_id"] == c["id"] and new["amount"] == "10000.00"
    assert (new["start_date"], new["end_date"]) == ("2026-07-01", "2026-10-30")
    assert [i["due_date"] for i in new["payment_plan"]] == ["2026-07-10", "2026-08-10"]
    assert api.post(f"/v1/contracts/{c['id']}/renew", REP, {}).status_code == 409
    api.post(f"/v1/contracts/{new['id']}/submit", REP)
    api.post(f"/v1/contracts/{new['id']}/sign", REP, {"signed_on": "2026-06-05"})
    assert api.get(f"/v1/contracts/{c['id']}", REP).json["status"] == "renewed"
    [ren] = api.events("contract.renewed")
    assert ren["payload"]["successor_id"] == str(new["id"])
    at(clock, 2026, 7, 2)
    assert jobs.contract_lifecycle(rt)["churned"] == 0
    assert api.events("customer.churned") == []
    assert api.get(f"/v1/contracts/{new['id']}", REP).json["status"] == "active"


def test_expiry_with_another_active_contract_is_not_churn(api, products, clock):
    a = signed_contract(api, "L1", start="2026-03-01", end="2026-06-30")
    opp = api.post("/v1/opportunities", REP, {"customer_id": a["customer_id"], "name": "More seats",
                                              "expected_amount": "5000.00", "currency": "CNY"}).json
    q = quote(api, opp["id"], qty="5")
    api.post(f"/v1/quotes/{q['id']}/submit", REP)
    k = api.post("/v1/contracts", REP, {"quote_id": q["id"], "start_date": "2026-03-01", "end_date": "2027-02-28",
                                        "payment_plan": [{"due_date": "2026-04-01", "amount": "5000.00"}]}).json
    api.post(f"/v1/contracts/{k['id']}/submit", REP)
    api.post(f"/v1/contracts/{k['id']}/sign", REP, {"signed_on": "2026-03-03"})
    at(clock, 2026, 7, 1)
    assert jobs.contract_lifecycle(api.runtime) == {"expiring": 0, "expired": 1, "churned": 0}


def test_contract_visibility_and_termination(api, products):
    c = signed_contract(api)
    assert api.get(f"/v1/contracts/{c['id']}", REP2).status_code == 404
    assert api.get(f"/v1/contracts/{c['id']}", MGR).status_code == 200
    assert api.post(f"/v1/contracts/{c['id']}/terminate", REP, {"reason": "x"}).status_code == 403
    r = api.post(f"/v1/contracts/{c['id']}/terminate", MGR, {"reason": "customer bankrupt"})
    assert r.status_code == 200 and r.json["status"] == "terminated"
    assert api.events("contract.terminated")[0]["payload"]["reason"] == "customer bankrupt"
    assert api.get("/v1/contracts", ADMIN).json[0]["id"] == c["id"]
