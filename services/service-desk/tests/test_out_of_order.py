"""Sales' events arriving in any order leave the read models right (issue 7, "Faults"): a contract
only moves forward (active -> expiring -> renewed / terminated), whatever order its events come in;
the ticket events this service emits say the ticket's status, so consumers can order them."""
import pytest
from sqlalchemy import select

from service_desk.models import customer_contracts

SIGNED = {"contract_id": "k1", "customer_id": "c1", "amount": "1000.00", "currency": "CNY",
          "start_date": "2026-01-01", "end_date": "2026-12-31"}


def status_of(desk, contract_id="k1"):
    with desk.rt.engine.connect() as c:
        return c.execute(select(customer_contracts.c.status, customer_contracts.c.end_date)
                         .where(customer_contracts.c.contract_id == contract_id)).first()


@pytest.mark.parametrize("order", [("contract.signed", "contract.expiring", "contract.renewed"),
                                   ("contract.renewed", "contract.signed", "contract.expiring"),
                                   ("contract.expiring", "contract.renewed", "contract.signed")])
def test_a_renewed_contract_ends_renewed_whatever_the_order(desk, order):
    for event_type in order:
        out, _ = desk.deliver(event_type, {**SIGNED, **({"successor_id": "k2"} if event_type == "contract.renewed" else {})})
        assert out[0].name == "ACK"
    row = status_of(desk)
    assert row.status == "renewed" and str(row.end_date) == "2026-12-31"


@pytest.mark.parametrize("order", [("contract.signed", "contract.terminated"), ("contract.terminated", "contract.signed"),
                                   ("contract.expiring", "contract.terminated", "contract.signed")])
def test_a_terminated_contract_stays_terminated(desk, order):
    for event_type in order:
        desk.deliver(event_type, SIGNED)
    assert status_of(desk).status == "terminated"
    desk.customer("c1")
    assert desk.call("get", "/v1/customers/c1").json["active_contracts"] == []


@pytest.mark.parametrize("order", [("contract.signed", "contract.expiring"), ("contract.expiring", "contract.signed")])
def test_expiring_wins_over_a_late_signature(desk, order):
    for event_type in order:
        desk.deliver(event_type, SIGNED)
    assert status_of(desk).status == "expiring"


def test_ticket_events_carry_the_status_after_the_change(desk):
    desk.agent("ag1", ["complaints"])
    desk.customer("c1")
    t = desk.ticket(customer="c1")
    assert desk.status(t["id"], "resolved").status_code == 200
    assert desk.status(t["id"], "open").status_code == 200  # reopened, back with the same agent
    events = [(e["type"], e["payload"]["status"]) for e in desk.events() if e["type"].startswith("ticket.")]
    assert events == [("ticket.created", "new"), ("ticket.assigned", "open"), ("ticket.resolved", "resolved"),
                      ("ticket.assigned", "open")]
