"""Funnel, forecast and sales by rep, with multi-currency through the exchange rates; value tiers."""
from decimal import Decimal

from sales import jobs
from sales.testing import ADMIN, FIN, MGR, REP, REP2, WEST_MGR, converted, opportunity, quote, seed_products


def test_exchange_rates(api):
    assert api.put("/v1/exchange-rates", REP, {"rates": {"USD": "7.1"}}).status_code == 403
    assert api.put("/v1/exchange-rates", FIN, {"rates": {"USD": 7.1}}).status_code == 422
    assert api.put("/v1/exchange-rates", FIN, {"rates": {"CNY": "1"}}).status_code == 422
    r = api.put("/v1/exchange-rates", FIN, {"rates": {"USD": "7.1234", "JPY": "0.048"}})
    assert r.status_code == 200 and r.json == {"base_currency": "CNY", "rates": {"USD": "7.1234", "JPY": "0.048"}}
    api.put("/v1/exchange-rates", FIN, {"rates": {"USD": "7.2"}})
    assert api.get("/v1/exchange-rates", REP).json["rates"] == {"USD": "7.2", "JPY": "0.048"}


def move(api, opp_id, *stages, who=REP, **extra):
    for s in stages:
        r = api.patch(f"/v1/opportunities/{opp_id}", who, {"stage": s, **extra})
        assert r.status_code == 200, r.json


def test_funnel_counts_amounts_and_conversion(api):
    api.put("/v1/exchange-rates", FIN, {"rates": {"USD": "7"}})
    ids = []
    for i in range(6):
        api.deliver("lead.converted", converted(f"L{i}", "rep1" if i < 4 else "rep2",
                                                contact={"phone": f"1380000000{i}"}, company=f"Co{i}",
                                                expected_amount="1000.00", currency="USD" if i == 0 else "CNY"))
        ids.append(api.get(f"/v1/opportunities?lead_id=L{i}", ADMIN).json[0]["id"])
    move(api, ids[0], "needs_analysis", "proposal", "negotiation", "won")
    move(api, ids[1], "needs_analysis", "proposal")
    move(api, ids[2], "needs_analysis")
    move(api, ids[3], "needs_analysis", "lost", lost_reason="budget")
    move(api, ids[4], "needs_analysis", "proposal", "negotiation", who=REP2)
    r = api.get("/v1/reports/funnel", MGR)
    assert r.status_code == 200, r.json
    f = r.json
    by = {s["stage"]: s for s in f["stages"]}
    assert [by[s]["count"] for s in ("qualification", "needs_analysis", "proposal", "negotiation", "won")] == \
        [1, 1, 1, 1, 1]
    assert [by[s]["reached"] for s in ("qualification", "needs_analysis", "proposal", "negotiation", "won")] == \
        [6, 5, 3, 2, 1]
    assert by["qualification"]["conversion_to_next"] == "0.8333" and by["negotiation"]["conversion_to_next"] == "0.5000"
    assert by["won"]["amount_base"] == "7000.00" and by["won"]["amounts"] == [{"currency": "USD", "amount": "1000.00"}]
    assert f["lost"] == {"count": 1, "amount_base": "1000.00"} and f["total"] == 6
    mine = api.get("/v1/reports/funnel?owner=rep2", MGR).json
    assert [s["reached"] for s in mine["stages"]] == [2, 1, 1, 1, 0]
    assert api.get("/v1/reports/funnel", WEST_MGR).json["total"] == 0
    assert api.get("/v1/reports/funnel", REP2).json["total"] == 2  # a rep sees their own
    assert api.get("/v1/reports/funnel?since=2030-01-01", MGR).json["total"] == 0
    assert api.get("/v1/reports/funnel?since=not-a-date", MGR).status_code == 422


def test_forecast_is_weighted_by_stage_and_month(api):
    a = opportunity(api, "L1")
    b = opportunity(api, "L2", contact={"phone": "1"}, company="Other", expected_amount="2000.00")
    api.patch(f"/v1/opportunities/{a['id']}", REP, {"stage": "proposal", "expected_close": "2026-05-20"})
    api.patch(f"/v1/opportunities/{b['id']}", REP, {"stage": "negotiation", "expected_close": "2026-05-03"})
    c = opportunity(api, "L3", contact={"phone": "2"}, company="Third", expected_amount="999.99")
    f = api.get("/v1/reports/forecast", REP).json
    assert f["months"] == [
        {"month": "2026-05", "count": 2, "pipeline_base": "122000.00", "weighted_base": "61500.00"},
        {"month": "unscheduled", "count": 1, "pipeline_base": "999.99", "weighted_base": "100.00"}]
    assert f["total_weighted_base"] == "61600.00"
    assert c["probability"] == "0.10"


def test_sales_by_rep_and_value_tiers(api, clock):
    seed_products(api)
    api.put("/v1/exchange-rates", FIN, {"rates": {"JPY": "0.05"}})
    amounts = {"L1": "80", "L2": "15", "L3": "5"}
    for i, (lead, qty) in enumerate(amounts.items()):
        opp = opportunity(api, lead, owner="rep1" if lead != "L3" else "rep2", contact={"phone": str(i)},
                          company=f"Co{i}")
        who = REP if lead != "L3" else REP2
        q = quote(api, opp["id"], qty=qty, who=who)
        api.post(f"/v1/quotes/{q['id']}/submit", who)
        total = str(Decimal(qty) * 1000) + ".00"
        k = api.post("/v1/contracts", who, {"quote_id": q["id"], "start_date": "2026-03-01", "end_date": "2027-02-28",
                                            "payment_plan": [{"due_date": "2026-04-01", "amount": total}]}).json
        api.post(f"/v1/contracts/{k['id']}/submit", who)
        assert api.post(f"/v1/contracts/{k['id']}/sign", who, {"signed_on": "2026-03-02"}).status_code == 200
    tiers = {c["lead_id"]: c["tier"] for c in api.get("/v1/customers", ADMIN).json}
    assert tiers == {"L1": "gold", "L2": "silver", "L3": "bronze"}
    upd = [e["payload"] for e in api.events("customer.updated")]
    assert {(u["lead_id"], u["tier"]) for u in upd} >= {("L1", "gold"), ("L2", "silver"), ("L3", "bronze")}
    assert jobs.value_tiers(api.runtime) == 0  # nightly recompute: nothing changed
    r = api.get("/v1/reports/sales-by-rep", MGR).json
    assert [(x["owner_id"], x["contracts"], x["amount_base"]) for x in r["reps"]] == \
        [("rep1", 2, "95000.00"), ("rep2", 1, "5000.00")]
    assert api.get("/v1/reports/sales-by-rep?since=2026-04-01", MGR).json["reps"] == []
    # a year later with no new contracts everybody is a prospect again
    clock.advance(days=400)
    assert jobs.value_tiers(api.runtime) == 3
    assert {c["tier"] for c in api.get("/v1/customers", ADMIN).json} == {"prospect"}
