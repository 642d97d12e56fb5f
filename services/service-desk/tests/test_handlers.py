"""The customer read model is built from events only; onboarding tickets open once per order."""
from datetime import date

from sqlalchemy import func, select

from service_desk.models import customers, processed_events, tickets


def cust(desk, cid="c1"):
    with desk.rt.engine.connect() as c:
        return c.execute(select(customers).where(customers.c.customer_id == cid)).mappings().first()


def test_read_model_from_customer_and_contract_events(desk):
    desk.customer("c1", tier="silver", owner="rep1", language="zh-CN")
    desk.deliver("customer.updated", {"customer_id": "c1", "name": "ACME Ltd", "tier": "gold", "owner_id": "rep2",
                                      "revision": 2})
    desk.deliver("contract.signed", {"contract_id": "k1", "customer_id": "c1", "amount": "1000.00", "currency": "CNY",
                                     "start_date": "2026-01-01", "end_date": "2027-12-31"})
    desk.deliver("contract.signed", {"contract_id": "k2", "customer_id": "c1", "amount": "5.00", "currency": "CNY",
                                     "end_date": "2026-12-31"})
    desk.deliver("contract.terminated", {"contract_id": "k2", "customer_id": "c1", "reason": "moved"})
    desk.deliver("contract.signed", {"contract_id": "k3", "customer_id": "c1", "amount": "5.00", "currency": "CNY",
                                     "end_date": "2025-12-31"})  # already ended
    t = desk.ticket(customer="c1")
    assert t["tier"] == "gold"
    ctx = desk.get(t["id"]).json["customer"]
    assert (ctx["name"], ctx["tier"], ctx["owner_id"], ctx["language"], ctx["known"]) == \
        ("ACME Ltd", "gold", "rep2", "zh-CN", True)
    assert [(k["contract_id"], k["end_date"]) for k in ctx["active_contracts"]] == [("k1", "2027-12-31")]
    second = desk.ticket(customer="c1")
    assert [p["id"] for p in desk.get(second["id"]).json["customer"]["past_tickets"]] == [t["id"]]
    assert desk.call("get", "/v1/customers/c1").json["name"] == "ACME Ltd"
    assert desk.call("get", "/v1/customers/nobody").json["known"] is False


def test_stale_and_out_of_order_customer_events(desk):
    # the update arrives first: the row is made from it
    desk.deliver("customer.updated", {"customer_id": "c1", "name": "New name", "tier": "gold", "revision": 3})
    desk.deliver("customer.created", {"customer_id": "c1", "name": "Old name", "tier": None, "revision": 1,
                                      "owner_id": "rep1"})
    row = cust(desk)
    assert (row["name"], row["tier"], row["revision"]) == ("New name", "gold", 3)
    desk.deliver("customer.updated", {"customer_id": "c1", "name": "Stale", "tier": "silver", "revision": 2})
    assert cust(desk)["name"] == "New name"
    desk.deliver("customer.updated", {"customer_id": "c1", "name": "Newest", "tier": "silver", "revision": 4})
    assert (cust(desk)["name"], cust(desk)["tier"]) == ("Newest", "silver")
    # without revisions: a late creation only fills what the update left empty
    desk.deliver("customer.updated", {"customer_id": "c2", "name": "Updated", "tier": "gold"})
    desk.deliver("customer.created", {"customer_id": "c2", "name": "Created", "tier": "bronze", "owner_id": "rep9"})
    row = cust(desk, "c2")
    assert (row["name"], row["tier"], row["owner_id"]) == ("Updated", "gold", "rep9")
    # a creation re-published later (new event id) never rolls back a newer update
    desk.deliver("customer.created", {"customer_id": "c2", "name": "Created", "tier": "bronze", "owner_id": "rep1"})
    row = cust(desk, "c2")
    assert (row["name"], row["tier"], row["owner_id"]) == ("Updated", "gold", "rep9")
    # an update without some fields leaves them as they were
    desk.deliver("customer.updated", {"customer_id": "c2", "name": "Renamed"})
    row = cust(desk, "c2")
    assert (row["name"], row["tier"], row["owner_id"]) == ("Renamed", "gold", "rep9")


def test_a_redelivered_event_has_no_second_effect(desk):
    out, env = desk.deliver("customer.created", {"customer_id": "c1", "name": "A", "revision": 1})
    out2, _ = desk.deliver("customer.created", {"customer_id": "c1", "name": "A", "revision": 1}, event_id=env.id)
    assert out[0].name == out2[0].name == "ACK"
    with desk.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(processed_events)).scalar_one() == 1


def test_onboarding_ticket_once_per_order_even_if_the_event_repeats(desk):
    desk.agent("trainer", ["onboarding"])
    desk.customer("c1", tier="gold")
    order = {"order_id": "o-1", "contract_id": "k1", "customer_id": "c1", "owner_id": "rep1",
             "products": [{"sku": "CRM-PRO", "name": "CRM Pro", "quantity": "10"}]}
    out, env = desk.deliver("order.fulfilled", order)
    assert out[0].name == "ACK"
    desk.deliver("order.fulfilled", order, event_id=env.id)  # the same delivery again
    desk.deliver("order.fulfilled", order)  # the same order, re-published with a new event id
    desk.deliver("order.fulfilled", {**order, "order_id": "o-2"})
    with desk.rt.engine.connect() as c:
        rows = c.execute(select(tickets).order_by(tickets.c.id)).mappings().all()
    assert [(r["order_id"], r["type"], r["queue"]) for r in rows] == [("o-1", "onboarding", "onboarding"),
                                                                      ("o-2", "onboarding", "onboarding")]
    assert rows[0]["assignee_id"] == "trainer" and "CRM Pro" in rows[0]["description"]
    created = desk.events("ticket.created")
    assert len(created) == 2 and created[0]["payload"]["owner_id"] == "rep1"
