"""Service-desk's ticket events in any order leave the customer's health right: the newest event by
`occurred_at` decides a ticket's status (issue 7, "Faults"); a churn-risk flag is announced once."""
import pytest

from sales.testing import ADMIN, MGR, REP, converted

AT = {"ticket.created": "2026-11-23T10:00:00+00:00", "ticket.assigned": "2026-11-23T10:00:01+00:00",
      "ticket.resolved": "2026-11-23T11:00:00+00:00"}
STATUS = {"ticket.created": "new", "ticket.assigned": "open", "ticket.resolved": "resolved"}


def _customer(api) -> str:
    api.deliver("lead.converted", converted())
    return str(api.get("/v1/customers", ADMIN).json[0]["id"])


def _health(api, cid):
    body = api.get(f"/v1/customers/{cid}", REP).json
    return body["open_tickets"], body["open_complaints"]


# in order, the resolution first, the creation last (the other orders add nothing new)
@pytest.mark.parametrize("order", [("ticket.created", "ticket.assigned", "ticket.resolved"),
                                   ("ticket.resolved", "ticket.created", "ticket.assigned"),
                                   ("ticket.assigned", "ticket.resolved", "ticket.created")])
def test_a_resolved_complaint_is_not_open_whatever_the_order(api, order):
    cid = _customer(api)
    for event_type in order:
        p = {"ticket_id": "T1", "customer_id": cid, "type": "complaint", "priority": "high", "queue": "complaints",
             "assignee_id": "a1", "status": STATUS[event_type]}
        api.deliver(event_type, p, occurred_at=AT[event_type])
    assert _health(api, cid) == (0, 0)


def test_a_reopened_ticket_is_open_again_and_a_late_resolution_does_not_close_it(api):
    cid = _customer(api)
    p = {"ticket_id": "T1", "customer_id": cid, "type": "complaint", "priority": "high", "queue": "complaints",
         "assignee_id": "a1"}
    api.deliver("ticket.created", {**p, "status": "open"}, occurred_at="2026-11-23T10:00:00+00:00")
    api.deliver("ticket.assigned", {**p, "status": "open"}, occurred_at="2026-11-23T12:00:00+00:00")  # reopened
    api.deliver("ticket.resolved", {**p, "status": "resolved"}, occurred_at="2026-11-23T11:00:00+00:00")  # late
    assert _health(api, cid) == (1, 1)
    # without a status in the payload (an older producer) the event type decides, still by time
    api.deliver("ticket.resolved", p, occurred_at="2026-11-23T13:00:00+00:00")
    assert _health(api, cid) == (0, 0)


def test_the_customer_of_a_converted_lead_belongs_to_the_team_code(api):
    """lead.converted carries leads' row id in team_id and the team as tokens name it in team_code."""
    api.deliver("lead.converted", converted(team="17", team_code="east"))
    [cust] = api.get("/v1/customers", MGR).json  # the east manager sees it
    assert cust["team_id"] == "east"
    [opp] = api.get("/v1/opportunities", MGR).json
    assert opp["team_id"] == "east"


def test_the_churn_flag_is_announced_once(api):
    cid = _customer(api)
    for ticket, score in (("T1", 2), ("T2", 1)):
        api.deliver("csat.submitted", {"ticket_id": ticket, "customer_id": cid, "owner_id": "rep1", "score": score})
    raised = [e["payload"] for e in api.events("customer.updated") if e["payload"].get("churn_risk_raised")]
    assert len(raised) == 1 and raised[0]["churn_reason"].startswith("CSAT score 2") and raised[0]["owner_id"] == "rep1"
