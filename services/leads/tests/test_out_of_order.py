"""Sales' events arriving late, early or twice leave the leads read models right (issue 7,
"Faults"): the customer index keeps the newest revision whatever the order, a contract is
attributed once, and a churn already acted on does not pull a lead back into the pool again."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_shared.bus import Delivery
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from leads.models import customers, lead_history
from leads.service import SERVICE

CREATED = {"customer_id": "cu1", "name": "Old Name Ltd", "owner_id": "rep1", "phone": "13800138000", "revision": 1}
UPDATED = {"customer_id": "cu1", "name": "New Name Ltd", "owner_id": "rep2", "phone": "13900139000", "revision": 2}


def deliver(env, event_type, payload, at=None):
    e = Envelope(type=event_type, version=1, payload=payload, producer="sales",
                 occurred_at=(at or env.clock.now()).isoformat())
    outcome, error, _ = Dispatcher(env.rt, SERVICE.handlers)(Delivery(e.id, e.type, e.to_json().encode(), 0))
    assert error is None, error
    return e


def customer(env):
    with env.rt.engine.connect() as c:
        return c.execute(select(customers).where(customers.c.customer_id == "cu1")).mappings().first()


@pytest.mark.parametrize("order", [("customer.created", "customer.updated"), ("customer.updated", "customer.created")])
def test_the_customer_index_keeps_the_newest_revision(env, order):
    for event_type in order:
        deliver(env, event_type, CREATED if event_type == "customer.created" else UPDATED)
    row = customer(env)
    assert (row["name"], row["owner_id"], row["revision"]) == ("New Name Ltd", "rep2", 2)
    assert env.post("/v1/leads", {"phone": "13900139000"}, env.rep("rep3")).status_code == 409
    if order[0] == "customer.updated":  # the stale creation taught nothing: its old number is free
        assert env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep3")).status_code == 201


def test_a_contract_signed_twice_is_won_once(env):
    lead = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep1")).json
    signed = {"contract_id": "k1", "customer_id": "cu1", "lead_id": lead["id"], "amount": "5000.00", "currency": "CNY"}
    deliver(env, "contract.signed", signed)
    deliver(env, "contract.signed", signed)  # re-published under a new event id
    with env.rt.engine.connect() as c:
        won = c.execute(select(lead_history.c.kind).where(lead_history.c.lead_id == int(lead["id"]),
                                                          lead_history.c.kind == "won")).all()
    assert len(won) == 1


def test_a_churn_acted_on_does_not_pull_the_lead_back_again(env):
    lead = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep1")).json
    deliver(env, "customer.created", {**CREATED, "lead_id": lead["id"]})
    churned = {"customer_id": "cu1", "owner_id": "rep1", "reason": "contract expired"}
    at = env.clock.now()
    deliver(env, "customer.churned", churned, at=at)
    assert env.client.get(f"/v1/leads/{lead['id']}", headers=env.admin()).json["status"] == "pooled"
    env.clock.advance(hours=1)
    assert env.client.post(f"/v1/leads/{lead['id']}/claim", headers=env.rep("rep2")).status_code == 200
    deliver(env, "customer.churned", churned, at=at)  # the same churn again, under a new event id
    deliver(env, "customer.churned", churned, at=at - timedelta(days=1))  # an older one, late
    got = env.client.get(f"/v1/leads/{lead['id']}", headers=env.admin()).json
    assert got["status"] != "pooled" and got["owner_id"] == "rep2"
    deliver(env, "customer.churned", churned, at=env.clock.now())  # a newer churn is a new win-back
    assert env.client.get(f"/v1/leads/{lead['id']}", headers=env.admin()).json["status"] == "pooled"


def test_lead_events_name_the_team_by_its_code(lite):
    """Other services know a team by the tokens' `team` claim (the team's code), not by this
    service's row id: lead events carry both, and a rep's own lead converts into the rep's team."""
    team_id = lite.team([{"user_id": "rep1", "name": "Rep One"}], code="east")
    lead = lite.post("/v1/leads", {"phone": "13800138000", "name": "Routed"}, lite.admin()).json
    assigned = lite.events("lead.assigned")[-1]["payload"]
    assert (assigned["team_id"], assigned["team_code"], assigned["owner_id"]) == (str(team_id), "east", "rep1")
    own = lite.post("/v1/leads", {"phone": "13900139000", "name": "Own"}, lite.rep("rep2", team="west")).json
    for x in (lead, own):
        owner = x["owner_id"]
        headers = lite.rep(owner, team="east" if owner == "rep1" else "west")
        assert lite.post(f"/v1/leads/{x['id']}/follow-ups", {"channel": "call"}, headers).status_code == 201
        assert lite.post(f"/v1/leads/{x['id']}/status", {"status": "qualified"}, headers).status_code == 200
        assert lite.post(f"/v1/leads/{x['id']}/convert", {"opportunity_name": "Deal"}, headers).status_code == 200
    converted = {e["payload"]["name"]: e["payload"] for e in lite.events("lead.converted")}
    assert converted["Routed"]["team_code"] == "east"
    assert converted["Own"]["team_id"] is None and converted["Own"]["team_code"] == "west"
