"""Events consumed: customer.created/updated (dedupe against customers), contract.signed (won,
revenue), customer.churned (win-back lead in the pool), referral.spotted (lead for the account
owner); each delivered twice has one effect."""
from sqlalchemy import func, select

from crm_shared.bus import Delivery
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from leads.models import contracts, leads
from leads.service import SERVICE


def deliver(env, event_type, payload, times=2):
    e = Envelope(type=event_type, version=1, payload=payload, producer="sales",
                 occurred_at=env.clock.now().isoformat())
    d = Dispatcher(env.rt, SERVICE.handlers)
    for _ in range(times):
        outcome, error, _delay = d(Delivery(e.id, e.type, e.to_json().encode(), 0))
        assert error is None, error
    return e


def count(env, table=leads):
    with env.rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


CUSTOMER = {"customer_id": "cu1", "name": "杭州某某科技有限公司", "owner_id": "rep7", "phone": "0571-8888 6666",
            "email": "Boss@HZ.com", "company": "杭州某某科技有限公司", "city": "杭州"}


def test_customers_are_deduplicated_against(env):
    env.post("/v1/teams", {"name": "T", "strategy": "round_robin", "members": [{"user_id": "rep7", "name": "Rep Seven"}]})
    deliver(env, "customer.created", CUSTOMER)
    for body, on in [({"phone": "+86 571 8888 6666"}, "phone"), ({"email": "boss@hz.com"}, "email"),
                     ({"phone": "13800138000", "company": "杭州某某科技 有限公司", "city": "杭州市"}, "company")]:
        r = env.post("/v1/leads", body, env.rep("rep1"))
        assert r.status_code == 409, body
        assert r.json["customer_id"] == "cu1" and r.json["owner_name"] == "Rep Seven" and r.json["matched_on"] == on
    r = env.client.get("/v1/lookup?email=BOSS@hz.com", headers=env.rep("rep1")).json
    assert r["status"] == "customer" and r["matches"][0]["owner_name"] == "Rep Seven"
    assert r["matches"][0]["email"] == "b***@hz.com"
    # a changed phone number is learnt from customer.updated
    deliver(env, "customer.updated", {**CUSTOMER, "phone": "13900139000", "revision": 2})
    assert env.post("/v1/leads", {"phone": "13900139000"}, env.rep("rep1")).status_code == 409
    assert count(env) == 0


def test_converted_lead_and_its_customer_share_keys(env):
    lead = env.post("/v1/leads", {"phone": "13800138000", "name": "Li"}, env.rep("rep1")).json
    deliver(env, "customer.created", {"customer_id": "cu2", "name": "Li", "owner_id": "rep1", "phone": "13800138000",
                                      "lead_id": lead["id"]})
    assert env.client.get(f"/v1/leads/{lead['id']}", headers=env.rep("rep1")).json["customer_id"] == "cu2"
    r = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep2"))
    assert r.status_code == 409 and r.json["duplicate_of"] == lead["id"] and r.json["customer_id"] == "cu2"


def test_contract_signed_marks_the_lead_won_once(env):
    lead = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep1")).json
    deliver(env, "contract.signed", {"contract_id": "k1", "customer_id": "cu1", "lead_id": lead["id"],
                                     "amount": "5000.00", "currency": "CNY"})
    assert count(env, contracts) == 1
    got = env.client.get(f"/v1/leads/{lead['id']}", headers=env.rep("rep1")).json
    assert got["won_at"] is not None and got["customer_id"] == "cu1"
    # a contract with no lead nor campaign is none of our business
    deliver(env, "contract.signed", {"contract_id": "k2", "customer_id": "cu9", "amount": "1.00", "currency": "CNY"})
    assert count(env, contracts) == 1


def test_churned_customer_comes_back_as_a_tagged_pooled_lead(env):
    deliver(env, "customer.created", CUSTOMER)
    deliver(env, "customer.churned", {"customer_id": "cu1", "owner_id": "rep7", "reason": "price"})
    pool = env.client.get("/v1/pool?tag=win_back", headers=env.rep()).json
    assert pool["total"] == 1 and pool["items"][0]["tags"] == "win_back"
    assert pool["items"][0]["phone"] == "571****6666"
    # the win-back lead now holds the customer's keys: a new intake is a duplicate of it
    r = env.post("/v1/leads", {"email": "boss@hz.com"}, env.rep("rep1"))
    assert r.status_code == 409 and r.json["duplicate_of"] == pool["items"][0]["id"]


def test_churn_of_a_customer_that_came_from_a_lead_reuses_it(env):
    lead = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep1")).json
    deliver(env, "customer.created", {"customer_id": "cu3", "name": "X", "owner_id": "rep1", "lead_id": lead["id"],
                                      "phone": "13800138000"})
    deliver(env, "customer.churned", {"customer_id": "cu3", "owner_id": "rep1", "reason": "moved"})
    assert count(env) == 1
    got = env.client.get(f"/v1/leads/{lead['id']}", headers=env.admin()).json
    assert got["status"] == "pooled" and got["tags"] == "win_back"


def test_referral_becomes_a_lead_for_the_account_owner(env):
    deliver(env, "customer.created", CUSTOMER)
    deliver(env, "referral.spotted", {"ticket_id": "t1", "customer_id": "cu1", "owner_id": "rep7", "agent_id": "ag1",
                                      "note": "wants the analytics add-on", "customer_name": "杭州某某科技",
                                      "phone": "0571-8888 6666"})
    items = env.client.get("/v1/leads", headers=env.rep("rep7")).json["items"]
    assert len(items) == 1
    assert items[0]["source"] == "referral" and items[0]["referrer_customer_id"] == "cu1"
    assert "analytics" in items[0]["note"] and items[0]["owner_id"] == "rep7"
    assert [e["type"] for e in env.events()] == ["lead.created", "lead.assigned"]  # the owner is told
    assigned = env.events("lead.assigned")[0]["payload"]
    assert assigned["owner_id"] == "rep7" and assigned["lead_id"] == items[0]["id"]
