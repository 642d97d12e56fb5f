"""SLA timers: due times in business time, the first public reply, pausing in pending, warning /
breach / escalation exactly once with a controlled clock, auto reply out of hours, the lifecycle."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import threading

import pytest

from crm_shared.scheduler import Scheduler
from service_desk import jobs
from service_desk.service import SERVICE

SH = ZoneInfo("Asia/Shanghai")


def at(iso):
    return datetime.fromisoformat(iso)


def test_due_times_follow_priority_tier_and_business_hours(desk):
    desk.customer("g", tier="gold")
    t = desk.ticket(priority="normal")
    # Monday 10:00, normal: first response 8 business hours, resolution 3 business days
    assert at(t["sla"]["first_response"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 18, 0, tzinfo=SH)
    assert at(t["sla"]["resolution"]["due_at"]).astimezone(SH) == datetime(2026, 11, 26, 10, 0, tzinfo=SH)
    g = desk.ticket(customer="g", priority="urgent")  # gold halves urgent's 1h / 4h
    assert at(g["sla"]["first_response"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 10, 30, tzinfo=SH)
    assert at(g["sla"]["resolution"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 12, 0, tzinfo=SH)
    r = desk.call("post", "/v1/sla-policies", json={"priority": "high", "tier": "*", "first_response_minutes": 30,
                                                    "resolution_minutes": 120})
    assert r.status_code == 201 and r.json["next_response_minutes"] == 30
    h = desk.ticket(priority="high")
    assert at(h["sla"]["first_response"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 10, 30, tzinfo=SH)
    hg = desk.ticket(customer="g", priority="high")  # the catch-all policy, halved for gold
    assert at(hg["sla"]["resolution"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 11, 0, tzinfo=SH)


def test_first_public_reply_stops_the_first_response_timer(desk):
    desk.agent("a1", ["complaints"])
    t = desk.ticket()
    desk.clock.advance(minutes=20)
    note = desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "internal", "public": False})
    assert note.status_code == 201
    assert desk.get(t["id"]).json["first_response_at"] is None
    desk.clock.advance(minutes=10)
    r = desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "We are on it", "public": True})
    assert r.status_code == 201 and r.json["public"] is True
    body = desk.get(t["id"]).json
    assert at(body["first_response_at"]) == desk.clock.now()
    assert at(body["sla"]["first_response"]["met_at"]) == desk.clock.now()
    # the customer writes again: a next-response timer runs until the next public reply
    desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "any news?", "from_customer": True})
    nr = desk.get(t["id"]).json["sla"]["next_response"]
    assert nr["met_at"] is None and nr["minutes"] == 480
    desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "Yes", "public": True})
    assert desk.get(t["id"]).json["sla"]["next_response"]["met_at"] is not None


def test_pending_pauses_the_clock_and_keeps_the_time_held(desk):
    desk.agent("a1", ["complaints"])
    t = desk.ticket(priority="urgent")  # resolution due 14:00 today
    assert at(t["sla"]["resolution"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 14, 0, tzinfo=SH)
    desk.clock.advance(hours=1)  # 11:00, 3 business hours left
    p = desk.status(t["id"], "pending")
    assert p.status_code == 200 and p.json["status"] == "pending"
    assert p.json["sla"]["resolution"]["paused"] is True
    assert p.json["sla"]["resolution"]["remaining_minutes"] == 180
    desk.clock.advance(days=1)  # Tuesday 11:00: the scan ignores a paused ticket
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    r = desk.status(t["id"], "open")
    assert r.status_code == 200
    assert at(r.json["sla"]["resolution"]["due_at"]).astimezone(SH) == datetime(2026, 11, 24, 14, 0, tzinfo=SH)
    assert r.json["held_seconds"] == 24 * 3600 and r.json["pending_since"] is None
    # a customer's answer also brings a pending ticket back
    desk.status(t["id"], "pending")
    desk.clock.advance(hours=2)
    desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "here you go", "from_customer": True})
    body = desk.get(t["id"]).json
    assert body["status"] == "open" and body["held_seconds"] == 26 * 3600


def test_warning_breach_and_escalation_exactly_once(desk):
    desk.agent("a1", ["incidents"])
    desk.call("put", "/v1/queues/incidents", json={"supervisor_id": "boss"})
    t = desk.ticket(type="incident", priority="urgent")  # first response 60 business minutes
    desk.clock.advance(minutes=47)
    assert jobs.sla_scan(desk.rt)["ticket.sla_warning"] == 0
    desk.clock.advance(minutes=1)  # 48 min = 80%
    assert jobs.sla_scan(desk.rt)["ticket.sla_warning"] == 1
    assert jobs.sla_scan(desk.rt)["ticket.sla_warning"] == 0
    desk.clock.advance(minutes=12)  # 60 min
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 1, "ticket.escalated": 1}
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    desk.clock.advance(hours=4)  # resolution (240 min): warning was skipped past, breach once
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 1, "ticket.escalated": 1}
    desk.clock.advance(days=3)
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    # as the worker runs it (under its advisory lock on PostgreSQL): still nothing new
    sched = Scheduler(desk.rt, SERVICE.jobs)
    assert sched.run_job(next(j for j in SERVICE.jobs if j.name == "sla-scan"))
    warned = desk.events("ticket.sla_warning")
    breached = desk.events("ticket.sla_breached")
    escalated = desk.events("ticket.escalated")
    assert [e["payload"]["target"] for e in warned] == ["first_response"]
    assert [e["payload"]["target"] for e in breached] == ["first_response", "resolution"]
    assert [(e["payload"]["target"], e["payload"]["escalated_to"]) for e in escalated] == \
        [("first_response", "boss"), ("resolution", "boss")]
    assert breached[0]["payload"]["supervisor_id"] == "boss" and breached[0]["payload"]["ticket_id"] == str(t["id"])
    body = desk.get(t["id"]).json
    assert body["breached"] and body["escalated_to"] == "boss"
    assert [x["id"] for x in desk.call("get", "/v1/tickets?breached=true").json] == [t["id"]]
    assert desk.call("get", "/v1/tickets?breached=false").json == []


def test_met_targets_raise_nothing(desk):
    desk.agent("a1", ["incidents"])
    t = desk.ticket(type="incident", priority="urgent")
    desk.call("post", f"/v1/tickets/{t['id']}/comments", json={"body": "hello", "public": True})
    desk.status(t["id"], "resolved")
    desk.clock.advance(days=2)
    assert jobs.sla_scan(desk.rt) == {"ticket.sla_warning": 0, "ticket.sla_breached": 0, "ticket.escalated": 0}
    rows = desk.call("get", "/v1/reports/sla?group_by=target").json["rows"]
    assert {r["key"]: (r["within"], r["breached"]) for r in rows} == {"first_response": (1, 0), "resolution": (1, 0)}


def test_out_of_hours_ticket_gets_an_automatic_reply(desk):
    desk.clock.set(datetime(2026, 11, 21, 11, 0, tzinfo=SH).astimezone(timezone.utc))  # Saturday
    desk.customer("c1", language="en")
    t = desk.ticket()
    assert "2026-11-23 at 09:00" in t["auto_reply"]
    assert "2026-11-23 09:00" in desk.ticket(customer="zh-customer")["auto_reply"]  # Chinese by default
    body = desk.get(t["id"]).json
    assert [c["automatic"] for c in body["comments"]] == [True]
    assert body["customer"]["past_tickets"] == []
    assert body["first_response_at"] is None  # the automatic reply is no first response
    assert at(body["sla"]["first_response"]["due_at"]).astimezone(SH) == datetime(2026, 11, 23, 17, 0, tzinfo=SH)
    desk.clock.set(datetime(2026, 11, 23, 10, 0, tzinfo=SH).astimezone(timezone.utc))
    assert desk.ticket()["auto_reply"] is None


def test_lifecycle_rules_reopen_and_auto_close(desk):
    desk.agent("a1", ["complaints"])
    t = desk.ticket()
    assert desk.status(t["id"], "closed").status_code == 409  # open -> closed is not allowed
    fresh = desk.ticket(customer="other")
    desk.call("patch", "/v1/agents/a1", json={"active": False})
    waiting = desk.ticket(customer="third")
    assert desk.status(waiting["id"], "resolved").status_code == 409  # new cannot be resolved
    assert desk.status(waiting["id"], "pending").status_code == 409
    r = desk.status(t["id"], "resolved")
    assert r.status_code == 200 and r.json["status"] == "resolved"
    desk.call("patch", "/v1/agents/a1", json={"active": True})  # takes the waiting ticket
    assert desk.get(waiting["id"]).json["assignee_id"] == "a1"
    desk.clock.advance(days=6)
    r = desk.status(t["id"], "open")  # reopen within 7 days: back to its agent, a new resolution timer
    assert r.status_code == 200 and (r.json["status"], r.json["assignee_id"]) == ("open", "a1")
    assert r.json["sla"]["resolution"]["cycle"] == 1 and r.json["sla"]["resolution"]["met_at"] is None
    assert desk.status(t["id"], "resolved").status_code == 200
    desk.clock.advance(days=7, seconds=1)
    assert jobs.auto_close(desk.rt) == 1
    body = desk.get(t["id"]).json
    assert body["status"] == "closed" and any(h["kind"] == "closed" for h in body["timeline"])
    assert desk.status(t["id"], "open").status_code == 409  # more than 7 days after resolution
    assert desk.get(fresh["id"]).json["status"] == "open"
    assert jobs.auto_close(desk.rt) == 0


@pytest.mark.postgres
def test_two_scans_at_once_still_emit_once(pg_url, new_desk):
    desk = new_desk(pg_url)
    desk.agent("a1", ["incidents"], max_open=100)
    for _ in range(30):
        desk.ticket(type="incident", priority="urgent")
    desk.clock.advance(minutes=61)  # every first-response timer breached
    results = []
    barrier = threading.Barrier(2)

    def scan():
        barrier.wait()
        results.append(jobs.sla_scan(desk.rt))

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["ticket.sla_breached"] for r in results) == 30
    assert len(desk.events("ticket.sla_breached")) == 30 and len(desk.events("ticket.escalated")) == 30
