"""CSAT one-time tokens; who sees which tickets; referrals; reports."""
from datetime import timedelta

import pytest


def resolved_ticket(desk):
    desk.agent("a1", ["complaints"])
    desk.customer("c1", owner="rep1", team="east")
    t = desk.ticket(customer="c1")
    r = desk.status(t["id"], "resolved")
    assert r.status_code == 200
    ev = desk.events("ticket.resolved")[-1]["payload"]
    return t, ev["csat_token"]


def test_csat_token_is_accepted_once_without_login(desk):
    t, token = resolved_ticket(desk)
    assert token and len(token) > 30
    page = desk.client.get(f"/v1/csat/{token}")
    assert page.status_code == 200 and page.json["answered"] is False and page.json["subject"] == "It broke"
    assert desk.client.post(f"/v1/csat/{token}", json={"score": 6}).status_code == 422
    assert desk.client.post(f"/v1/csat/{token}", json={"score": "5"}).status_code == 422
    r = desk.client.post(f"/v1/csat/{token}", json={"score": 2, "comment": "slow"})
    assert r.status_code == 201 and r.json["score"] == 2
    assert desk.client.post(f"/v1/csat/{token}", json={"score": 5}).status_code == 409
    assert desk.client.post("/v1/csat/not-a-token", json={"score": 5}).status_code == 404
    [sub] = desk.events("csat.submitted")
    assert sub["payload"] == {"ticket_id": str(t["id"]), "customer_id": "c1", "owner_id": "rep1", "score": 2,
                              "comment": "slow"}
    rep = desk.call("get", "/v1/reports/csat?group_by=queue").json["groups"]
    assert {g["key"]: (g["answered"], g["average"]) for g in rep} == {"(all)": (1, 2.0), "complaints": (1, 2.0)}


def test_csat_token_is_refused_after_14_days(desk):
    _, token = resolved_ticket(desk)
    desk.clock.advance(days=14, minutes=1)
    assert desk.client.post(f"/v1/csat/{token}", json={"score": 4}).status_code == 410
    assert desk.client.get(f"/v1/csat/{token}").json["expired"] is True
    assert desk.events("csat.submitted") == []


def test_access_agents_supervisors_and_sales(desk):
    desk.agent("a1", ["complaints"])
    desk.agent("a2", ["suggestions"])
    desk.customer("c1", owner="rep1", team="east")
    desk.customer("c2", owner="rep2", team="west")
    mine = desk.ticket(customer="c1")
    other = desk.ticket(customer="c2", type="suggestion")
    agent = dict(user="a1", roles=("service_agent",))
    assert desk.get(mine["id"], **agent).status_code == 200
    assert desk.get(other["id"], **agent).status_code == 404  # another queue: not even its existence
    assert [t["id"] for t in desk.call("get", "/v1/tickets", **agent).json] == [mine["id"]]
    assert {t["id"] for t in desk.call("get", "/v1/tickets").json} == {mine["id"], other["id"]}  # supervisor
    rep = dict(user="rep1", roles=("sales_rep",))
    assert desk.get(mine["id"], **rep).status_code == 200
    assert desk.get(other["id"], **rep).status_code == 404
    assert desk.call("post", f"/v1/tickets/{mine['id']}/comments", json={"body": "hi", "public": True},
                     **rep).status_code == 403  # read-only
    assert desk.call("post", "/v1/tickets", json={}, **rep).status_code == 403
    mgr = dict(user="m", roles=("sales_manager",), team="west")
    assert [t["id"] for t in desk.call("get", "/v1/tickets", **mgr).json] == [other["id"]]
    assert desk.call("get", "/v1/customers/c1", **rep).status_code == 200
    assert desk.call("get", "/v1/customers/c2", **rep).status_code == 404
    assert desk.call("get", "/v1/reports/sla", **agent).status_code == 403
    assert desk.client.get("/v1/tickets").status_code == 401


def test_referral_spotted(desk):
    desk.agent("a1", ["complaints"])
    desk.customer("c1", owner="rep1", phone="13800000000")
    t = desk.ticket(customer="c1")
    r = desk.call("post", f"/v1/tickets/{t['id']}/referral", json={"note": "wants 20 more seats"}, user="a1",
                  roles=("service_agent",))
    assert r.status_code == 201, r.json
    [e] = desk.events("referral.spotted")
    assert e["payload"]["owner_id"] == "rep1" and e["payload"]["agent_id"] == "a1"
    assert e["payload"]["phone"] == "13800000000" and e["payload"]["customer_name"] == "Customer c1"
    assert desk.call("post", f"/v1/tickets/{t['id']}/referral", json={"note": ""}).status_code == 422


def test_sla_report_by_agent_and_calendar_endpoint(desk):
    desk.agent("a1", ["incidents"], max_open=1)
    t1 = desk.ticket(type="incident", priority="urgent")
    desk.ticket(type="incident", priority="urgent")
    desk.call("post", f"/v1/tickets/{t1['id']}/comments", json={"body": "on it", "public": True})
    desk.clock.advance(hours=2)
    rows = {r["key"]: r for r in desk.call("get", "/v1/reports/sla?group_by=agent").json["rows"]}
    assert (rows["a1"]["within"], rows["a1"]["breached"], rows["a1"]["running"]) == (1, 0, 1)
    assert rows["a1"]["within_share"] == 1.0
    assert (rows["(unassigned)"]["breached"], rows["(unassigned)"]["within_share"]) == (1, 0.0)
    cal = desk.call("get", "/v1/calendar").json
    assert cal["timezone"] == "Asia/Shanghai" and cal["hours"]["0"] == ["09:00", "18:00"]
    r = desk.call("put", "/v1/calendar", json={"hours": {"0": ["10:00", "09:00"]}})
    assert r.status_code == 422
    r = desk.call("put", "/v1/calendar", json={"closed_days": ["2026-11-24"], "hours": {str(d): ["09:00", "18:00"]
                                                                                     for d in range(5)}})
    assert r.status_code == 200 and r.json["closed_days"] == ["2026-11-24"]
    t = desk.ticket(type="incident", priority="low")  # Monday 12:00 + 9h: 6h today, Tuesday closed, 3h Wednesday
    assert t["sla"]["first_response"]["due_at"] == "2026-11-25T04:00:00+00:00"
