"""Campaign ROI and the report by source, from leads, conversions, costs and contract.signed."""
from decimal import Decimal

from crm_shared.bus import Delivery
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from leads.service import SERVICE


def signed(env, contract_id, lead_id, amount, currency="CNY"):
    e = Envelope(type="contract.signed", version=1, producer="sales", occurred_at=env.clock.now().isoformat(),
                 payload={"contract_id": contract_id, "customer_id": "c-" + contract_id, "lead_id": lead_id,
                          "amount": amount, "currency": currency})
    assert Dispatcher(env.rt, SERVICE.handlers)(Delivery(e.id, e.type, e.to_json().encode(), 0))[0].name == "ACK"


def test_roi_figures(env):
    camp = env.post("/v1/campaigns", {"name": "Spring expo", "source": "exhibition", "budget": "20000.00",
                                      "currency": "CNY", "starts_on": "2026-03-01", "ends_on": "2026-03-31"},
                    env.manager())
    assert camp.status_code == 201, camp.json
    cid = int(camp.json["id"])
    ids = [env.post("/v1/leads", {"phone": f"1380013800{i}", "source": "exhibition", "campaign_id": cid},
                    env.rep()).json["id"] for i in range(4)]
    for lead in ids[:2]:
        env.post(f"/v1/leads/{lead}/status", {"status": "contacted"}, env.rep())
        env.post(f"/v1/leads/{lead}/status", {"status": "qualified"}, env.rep())
        assert env.post(f"/v1/leads/{lead}/convert", {"opportunity_name": "o"}, env.rep()).status_code == 200
    signed(env, "k1", ids[0], "30000.00")
    signed(env, "k2", ids[1], "5000.50")
    signed(env, "k3", ids[1], "100.00", "USD")
    assert env.post(f"/v1/campaigns/{cid}/costs", {"amount": "6000.00", "incurred_on": "2026-03-01"},
                    env.manager()).status_code == 201
    assert env.post(f"/v1/campaigns/{cid}/costs", {"amount": "4000.00", "incurred_on": "2026-03-10"},
                    env.h("fin", ("finance",))).status_code == 201
    r = env.post(f"/v1/campaigns/{cid}/costs", {"amount": "1.00", "currency": "USD", "incurred_on": "2026-03-10"},
                 env.manager())
    assert r.status_code == 422 and "currency" in r.json["errors"]
    roi = env.client.get(f"/v1/campaigns/{cid}/roi", headers=env.manager()).json
    assert roi["leads"] == 4 and roi["converted_leads"] == 2 and roi["won_contracts"] == 3
    assert Decimal(roi["revenue"]) == Decimal("35000.50") and Decimal(roi["cost"]) == Decimal("10000.00")
    assert Decimal(roi["cost_per_lead"]) == Decimal("2500.00")
    assert Decimal(roi["roi"]) == Decimal("2.5001")  # (35000.50 - 10000) / 10000, rounded
    assert roi["revenue_other_currencies"] == {"USD": "100.00"}
    assert env.client.get(f"/v1/campaigns/{cid}/roi", headers=env.rep()).status_code == 403

    report = {row["source"]: row for row in env.client.get("/v1/reports/sources", headers=env.manager()).json["items"]}
    assert report["exhibition"]["leads"] == 4 and report["exhibition"]["converted_leads"] == 2
    assert report["exhibition"]["revenue"] == {"CNY": "35000.50", "USD": "100.00"}
    assert report["exhibition"]["cost"] == {"CNY": "10000.00"}
    assert report["website"]["leads"] == 0


def test_roi_of_an_empty_campaign_has_no_ratios(env):
    cid = env.post("/v1/campaigns", {"name": "C", "source": "website", "currency": "CNY"}, env.manager()).json["id"]
    roi = env.client.get(f"/v1/campaigns/{cid}/roi", headers=env.admin()).json
    assert roi["leads"] == 0 and roi["cost_per_lead"] is None and roi["roi"] is None
    assert env.client.get("/v1/campaigns/999/roi", headers=env.admin()).status_code == 404
    assert env.post("/v1/leads", {"phone": "13800138000", "campaign_id": 999}, env.rep()).status_code == 422
