"""lead.converted makes one customer and one opportunity per lead, whatever repeats; a low CSAT
score flags the churn risk and tells the owner through customer.updated."""
import threading
import uuid

from sqlalchemy import func, select

from crm_shared.bus import Outcome
from sales import models
from sales.testing import ADMIN, REP, WEST_REP, converted


def counts(api):
    with api.runtime.engine.connect() as c:
        return (c.execute(select(func.count()).select_from(models.customers)).scalar_one(),
                c.execute(select(func.count()).select_from(models.opportunities)).scalar_one())


def test_lead_converted_creates_customer_and_opportunity_once(api):
    event_id = str(uuid.uuid4())
    assert api.deliver("lead.converted", converted(), event_id)[0] == Outcome.ACK
    assert api.deliver("lead.converted", converted(), event_id)[0] == Outcome.ACK  # redelivery
    assert api.deliver("lead.converted", converted())[0] == Outcome.ACK  # same lead, another event id
    assert counts(api) == (1, 1)
    [cust] = api.get("/v1/customers", REP).json
    assert cust["lead_id"] == "L1" and cust["owner_id"] == "rep1" and cust["campaign_id"] == "C7"
    assert cust["city"] == "Hangzhou" and cust["birthday"] == "1985-06-01" and cust["language"] == "zh-CN"
    assert cust["tier"] == "prospect" and cust["churn_risk"] is False and cust["revision"] == 1
    assert cust["contacts"][0]["phone"] == "+86 138 0013 8000"
    [opp] = api.get("/v1/opportunities?lead_id=L1", REP).json
    assert opp["stage"] == "qualification" and opp["expected_amount"] == "120000.00" and opp["currency"] == "CNY"
    assert opp["customer_id"] == cust["id"] and opp["name"] == "Acme CRM seats" and opp["owner_id"] == "rep1"
    created = api.events("customer.created")
    assert len(created) == 1 and created[0]["payload"]["revision"] == 1 and created[0]["payload"]["lead_id"] == "L1"
    # another rep's customer answers 404
    assert api.get(f"/v1/customers/{cust['id']}", WEST_REP).status_code == 404


def test_a_second_lead_of_a_known_customer_adds_an_opportunity_only(api):
    api.deliver("lead.converted", converted("L1"))
    api.deliver("lead.converted", converted("L2", contact={"phone": "13800138000"}, opportunity_name="Upsell"))
    assert counts(api) == (1, 2)


def test_two_events_for_one_lead_racing_make_one_customer(pg_url, tmp_path, clock):
    from sales.testing import Api, make_app
    api = Api(make_app(pg_url, tmp_path, clock))
    results, barrier = [], threading.Barrier(4)

    def go():
        barrier.wait()
        results.append(api.deliver("lead.converted", converted("L-race"))[0])

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the losers hit the unique lead_id and are retried; the retry finds the lead converted
    for outcome in results:
        if outcome != Outcome.ACK:
            assert api.deliver("lead.converted", converted("L-race"))[0] == Outcome.ACK
    assert counts(api) == (1, 1)
    api.runtime.close()


def test_low_csat_flags_churn_risk_once_and_tells_the_owner(api):
    api.deliver("lead.converted", converted())
    cid = api.get("/v1/customers", ADMIN).json[0]["id"]
    api.deliver("csat.submitted", {"ticket_id": "T1", "customer_id": str(cid), "owner_id": "rep1", "score": 4})
    assert api.get(f"/v1/customers/{cid}", REP).json["churn_risk"] is False
    api.deliver("csat.submitted", {"ticket_id": "T2", "customer_id": str(cid), "owner_id": "rep1", "score": 2})
    api.deliver("csat.submitted", {"ticket_id": "T3", "customer_id": str(cid), "owner_id": "rep1", "score": 1})
    body = api.get(f"/v1/customers/{cid}", REP).json
    assert body["churn_risk"] is True and "CSAT score 2" in body["churn_reason"] and body["revision"] == 2
    [upd] = api.events("customer.updated")
    assert upd["payload"]["churn_risk"] is True and upd["payload"]["owner_id"] == "rep1"
    assert upd["payload"]["revision"] == 2
    # a customer of another service's imagination is ignored, not dead-lettered
    assert api.deliver("csat.submitted", {"ticket_id": "T4", "customer_id": "999", "score": 1})[0] == Outcome.ACK


def test_ticket_events_keep_the_customer_health(api):
    api.deliver("lead.converted", converted())
    cid = str(api.get("/v1/customers", ADMIN).json[0]["id"])
    base = {"customer_id": cid, "priority": "high", "queue": "q"}
    at = lambda minute: f"2026-11-23T10:{minute:02d}:00+00:00"  # noqa: E731 - when each event happened
    api.deliver("ticket.created", {**base, "ticket_id": "T1", "type": "complaint"}, occurred_at=at(1))
    api.deliver("ticket.created", {**base, "ticket_id": "T2", "type": "inquiry"}, occurred_at=at(2))
    api.deliver("ticket.resolved", {**base, "ticket_id": "T3", "type": "incident"}, occurred_at=at(9))  # first seen
    api.deliver("ticket.assigned", {**base, "ticket_id": "T1", "type": "complaint", "assignee_id": "a1"},
                occurred_at=at(3))
    body = api.get(f"/v1/customers/{cid}", REP).json
    assert (body["open_tickets"], body["open_complaints"]) == (2, 1)
    api.deliver("ticket.resolved", {**base, "ticket_id": "T1", "type": "complaint"}, occurred_at=at(5))
    api.deliver("ticket.created", {**base, "ticket_id": "T3", "type": "incident"}, occurred_at=at(4))  # late: stays resolved
    body = api.get(f"/v1/customers/{cid}", REP).json
    assert (body["open_tickets"], body["open_complaints"]) == (1, 0)
    assert api.deliver("ticket.created", {**base, "customer_id": "nope", "ticket_id": "T9", "type": "x"})[0] \
        == Outcome.ACK
