"""Manual escalation: POST /v1/tickets/{id}/escalate hands a live ticket to its queue's supervisor
before any breach, once: the ticket holds it, the timeline records it, `ticket.escalated` leaves
through the outbox with the payload the SLA scan sends; a second escalation (also a concurrent
one), a closed ticket, a queue without a supervisor are 409; a ticket out of sight is 404."""
from __future__ import annotations

import threading

import pytest

from service_desk import jobs

AGENT = dict(user="a1", roles=("service_agent",))


def setup_desk(desk, supervisor="boss"):
    desk.agent("a1", ["complaints"])
    desk.agent("a2", ["suggestions"])
    desk.customer("c1", owner="rep1", team="east")
    if supervisor:
        desk.call("put", "/v1/queues/complaints", json={"supervisor_id": supervisor})
    return desk.ticket(customer="c1", priority="high")


def escalate(desk, tid, body=None, **who):
    return desk.call("post", f"/v1/tickets/{tid}/escalate", json={} if body is None else body, **who)


def test_agent_escalates_a_ticket_once(desk):
    t = setup_desk(desk)
    assert t["escalated_to"] is None and t["assignee_id"] == "a1"
    r = escalate(desk, t["id"], {"reason": "  customer threatens to cancel  "}, **AGENT)
    assert r.status_code == 200, r.json
    assert r.json["escalated_to"] == "boss" and r.json["status"] == "open" and not r.json["breached"]
    body = desk.get(t["id"], **AGENT).json
    assert body["escalated_to"] == "boss"
    [step] = [x for x in body["timeline"] if x["kind"] == "escalated"]
    assert step["actor_id"] == "a1"
    assert step["data"] == {"target": "first_response", "escalated_to": "boss", "reason": "customer threatens to cancel",
                            "manual": True}
    [ev] = desk.events("ticket.escalated")
    p = ev["payload"]
    first = body["sla"]["first_response"]
    assert ev["producer"] == "service-desk"
    assert (p["ticket_id"], p["customer_id"], p["queue"], p["priority"], p["assignee_id"], p["owner_id"]) == \
        (str(t["id"]), "c1", "complaints", "high", "a1", "rep1")
    assert (p["escalated_to"], p["supervisor_id"], p["target"], p["status"]) == ("boss", "boss", "first_response", "open")
    assert p["due_at"][:19] == first["due_at"][:19]
    # again: 409 problem+json, nothing more emitted or recorded
    again = escalate(desk, t["id"], **AGENT)
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    assert "already escalated" in again.json["detail"]
    assert len(desk.events("ticket.escalated")) == 1
    assert [x["kind"] for x in desk.get(t["id"]).json["timeline"]].count("escalated") == 1


def test_the_body_is_optional_and_the_reason_is_checked(desk):
    t = setup_desk(desk)
    r = escalate(desk, t["id"], {"reason": "x" * 2001})
    assert r.status_code == 422 and "reason" in r.json["errors"], r.json
    assert escalate(desk, t["id"], {"why": "no"}).status_code == 422
    assert desk.get(t["id"]).json["escalated_to"] is None and desk.events("ticket.escalated") == []
    r = desk.call("post", f"/v1/tickets/{t['id']}/escalate")  # no body at all: a supervisor escalates
    assert r.status_code == 200, r.json
    assert r.json["escalated_to"] == "boss"
    [step] = [x for x in desk.get(t["id"]).json["timeline"] if x["kind"] == "escalated"]
    assert step["actor_id"] == "sup" and step["data"]["reason"] is None


def test_who_may_escalate(desk):
    t = setup_desk(desk)
    # another queue's agent does not see the ticket; sales see it read-only; unknown ids are 404
    assert escalate(desk, t["id"], user="a2", roles=("service_agent",)).status_code == 404
    assert escalate(desk, t["id"], user="rep1", roles=("sales_rep",)).status_code == 403
    assert escalate(desk, 999999, **AGENT).status_code == 404
    assert desk.client.post(f"/v1/tickets/{t['id']}/escalate", json={}).status_code == 401
    assert desk.get(t["id"]).json["escalated_to"] is None and desk.events("ticket.escalated") == []


def test_closed_resolved_and_supervisorless_tickets_are_conflicts(desk):
    t = setup_desk(desk, supervisor=None)
    r = escalate(desk, t["id"], **AGENT)
    assert r.status_code == 409 and "no supervisor" in r.json["detail"]
    desk.call("put", "/v1/queues/complaints", json={"supervisor_id": "boss"})
    assert desk.status(t["id"], "resolved").status_code == 200
    assert escalate(desk, t["id"], **AGENT).status_code == 409
    assert desk.status(t["id"], "closed").status_code == 200
    r = escalate(desk, t["id"], **AGENT)
    assert r.status_code == 409 and "closed" in r.json["detail"]
    assert desk.get(t["id"]).json["escalated_to"] is None and desk.events("ticket.escalated") == []


def test_a_pending_ticket_escalates_on_its_resolution_timer_and_the_scan_still_breaches_it(desk):
    t = setup_desk(desk)
    desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "on it", "public": True}, **AGENT)
    assert desk.status(t["id"], "pending", **AGENT).status_code == 200
    r = escalate(desk, t["id"], {"reason": "stuck"}, **AGENT)
    assert r.status_code == 200 and r.json["escalated_to"] == "boss"
    [ev] = desk.events("ticket.escalated")
    assert ev["payload"]["target"] == "resolution" and ev["payload"]["status"] == "pending"
    # the scan's own escalation on a breach is per timer, as before
    assert desk.status(t["id"], "open", **AGENT).status_code == 200
    desk.clock.advance(days=5)
    assert jobs.sla_scan(desk.rt)["ticket.escalated"] == 1
    assert [e["payload"]["target"] for e in desk.events("ticket.escalated")] == ["resolution", "resolution"]


def test_two_escalations_at_once_emit_exactly_one_event(desk):
    t = setup_desk(desk)
    barrier = threading.Barrier(2)
    codes = []

    def go(user, roles):
        client = desk.app.test_client()
        headers = desk.headers(user, roles)
        barrier.wait()
        codes.append(client.post(f"/v1/tickets/{t['id']}/escalate", json={"reason": user}, headers=headers).status_code)

    threads = [threading.Thread(target=go, args=a) for a in (("a1", ("service_agent",)), ("sup", ("service_supervisor",)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes) == [200, 409]
    assert len(desk.events("ticket.escalated")) == 1
    assert [x["kind"] for x in desk.get(t["id"]).json["timeline"]].count("escalated") == 1
    assert desk.get(t["id"]).json["escalated_to"] == "boss"


@pytest.mark.postgres
def test_many_escalations_at_once_on_postgres_emit_once(pg_url, new_desk):
    desk = new_desk(pg_url)
    t = setup_desk(desk)
    n = 8
    barrier = threading.Barrier(n)
    codes = []

    def go(i):
        client = desk.app.test_client()
        barrier.wait()
        codes.append(client.post(f"/v1/tickets/{t['id']}/escalate", json={"reason": f"r{i}"},
                                 headers=desk.headers("sup", ("service_supervisor",))).status_code)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes) == [200] + [409] * (n - 1)
    assert len(desk.events("ticket.escalated")) == 1
