"""Queues per type, skill-based least-loaded routing with capacity, queueing and later
assignment, gold/urgent first, supervisor reassignment."""
import threading

import pytest
from sqlalchemy import func, select

from service_desk.domain import tickets as rules
from service_desk.domain.sla import load_calendar
from service_desk.models import agents, tickets



def test_each_type_has_its_own_queue_and_goes_to_a_skilled_agent(desk):
    desk.agent("a-compl", ["complaints"])
    desk.agent("a-sugg", ["suggestions"])
    c = desk.ticket(type="complaint")
    s = desk.ticket(type="suggestion")
    o = desk.ticket(type="onboarding")
    assert (c["queue"], c["assignee_id"], c["status"]) == ("complaints", "a-compl", "open")
    assert (s["queue"], s["assignee_id"]) == ("suggestions", "a-sugg")
    assert (o["queue"], o["assignee_id"], o["status"]) == ("onboarding", None, "new")  # nobody has the skill
    assert c["sla"]["first_response"]["due_at"] and c["sla"]["resolution"]["due_at"]
    assigned = desk.events("ticket.assigned")
    assert [(e["payload"]["ticket_id"], e["payload"]["assignee_id"]) for e in assigned] == \
        [(str(c["id"]), "a-compl"), (str(s["id"]), "a-sugg")]
    assert len(desk.events("ticket.created")) == 3


def test_least_open_wins_and_capacity_is_respected(desk):
    desk.agent("a1", ["complaints"], max_open=2)
    desk.agent("a2", ["complaints"], max_open=1)
    desk.agent("off", ["complaints"], max_open=9, active=False)
    got = [desk.ticket()["assignee_id"] for _ in range(4)]
    # a1 (0 open, first by id), a2 (0 open), a1 (1 open vs a2 full), then nobody: waits
    assert got == ["a1", "a2", "a1", None]
    loads = {a["user_id"]: a["open_count"] for a in desk.call("get", "/v1/agents").json}
    assert loads == {"a1": 2, "a2": 1, "off": 0}
    q = {x["name"]: x for x in desk.call("get", "/v1/queues").json}
    assert q["complaints"]["waiting"] == 1 and q["complaints"]["open"] == 3 and q["complaints"]["agents"] == 2


def test_waiting_ticket_is_assigned_when_an_agent_frees_up(desk):
    desk.agent("a1", ["complaints"], max_open=1)
    first = desk.ticket()
    waiting = desk.ticket()
    assert waiting["assignee_id"] is None and waiting["status"] == "new"
    assert desk.status(first["id"], "resolved").status_code == 200
    t = desk.get(waiting["id"]).json
    assert (t["assignee_id"], t["status"]) == ("a1", "open")
    assert any(h["kind"] == "assigned" for h in t["timeline"])


def test_waiting_tickets_go_to_a_new_agent_and_to_raised_capacity(desk):
    t1, t2, t3 = desk.ticket(), desk.ticket(), desk.ticket()
    desk.agent("a1", ["complaints"], max_open=1)
    assert desk.get(t1["id"]).json["assignee_id"] == "a1"
    r = desk.call("patch", "/v1/agents/a1", json={"max_open": 3})
    assert r.status_code == 200 and r.json["open_count"] == 3
    assert {desk.get(t["id"]).json["assignee_id"] for t in (t2, t3)} == {"a1"}


def test_gold_customers_and_urgent_tickets_go_first(desk):
    desk.customer("gold-co", tier="gold")
    desk.customer("plain-co", tier="standard")
    low = desk.ticket(customer="plain-co", priority="low")
    normal = desk.ticket(customer="plain-co", priority="normal")
    urgent = desk.ticket(customer="plain-co", priority="urgent")
    gold = desk.ticket(customer="gold-co", priority="normal")
    listed = [t["id"] for t in desk.call("get", "/v1/tickets?status=new").json]
    assert listed == [urgent["id"], gold["id"], normal["id"], low["id"]]
    desk.agent("a1", ["complaints"], max_open=2)
    assigned = {t["id"] for t in desk.call("get", "/v1/tickets?assignee=a1").json}
    assert assigned == {urgent["id"], gold["id"]}


def test_supervisor_reassigns_within_capacity(desk):
    desk.agent("a1", ["complaints"], max_open=1)
    desk.agent("a2", ["complaints"], max_open=1)
    t = desk.ticket()
    waiting = desk.ticket()  # goes to a2
    assert waiting["assignee_id"] == "a2"
    r = desk.call("post", f"/v1/tickets/{t['id']}/assignment", json={"assignee_id": "a2"})
    assert r.status_code == 409  # a2 is full
    desk.agent("a3", ["complaints"], max_open=1)
    r = desk.call("post", f"/v1/tickets/{t['id']}/assignment", json={"assignee_id": "a3"})
    assert r.status_code == 200 and r.json["assignee_id"] == "a3"
    r = desk.call("post", f"/v1/tickets/{t['id']}/assignment", json={"assignee_id": "a2"}, user="ag",
                  roles=("service_agent",))
    assert r.status_code == 403
    loads = {a["user_id"]: a["open_count"] for a in desk.call("get", "/v1/agents").json}
    assert loads == {"a1": 0, "a2": 1, "a3": 1}


def test_bad_input_is_refused_field_by_field(desk):
    r = desk.call("post", "/v1/tickets", json={"customer_id": "", "type": "rant", "priority": "asap",
                                               "subject": "x\x00", "channel": "fax"})
    assert r.status_code == 422
    assert set(r.json["errors"]) >= {"customer_id", "type", "priority", "subject", "channel"}
    assert desk.call("post", "/v1/agents", json={"user_id": "x", "skills": ["nope"]}).status_code == 422
    assert desk.call("get", "/v1/tickets/999").status_code == 404


@pytest.mark.postgres
def test_concurrent_creation_never_exceeds_max_open(pg_url, new_desk):
    desk = new_desk(pg_url)
    if True:
        desk.agent("a1", ["incidents"], max_open=3)
        desk.agent("a2", ["incidents"], max_open=2)
        rt = desk.rt
        barrier = threading.Barrier(20)
        errors = []

        def file_one(i):
            try:
                barrier.wait()
                with rt.uow() as uow:
                    rules.create(uow, load_calendar(uow.session), rt.clock.now(),
                                 {"customer_id": f"c{i}", "type": "incident", "priority": "high",
                                  "subject": "down", "channel": "api"}, "t")
                    uow.commit()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=file_one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with rt.engine.connect() as c:
            per_agent = dict(c.execute(select(tickets.c.assignee_id, func.count())
                                       .group_by(tickets.c.assignee_id)).all())
            counts = dict(c.execute(select(agents.c.user_id, agents.c.open_count)).all())
        assert per_agent == {"a1": 3, "a2": 2, None: 15}
        assert counts == {"a1": 3, "a2": 2}


@pytest.mark.postgres
def test_concurrent_resolutions_hand_out_waiting_tickets_without_overfilling(pg_url, new_desk):
    desk = new_desk(pg_url)
    for i in range(4):
        desk.agent(f"a{i}", ["complaints"], max_open=2)
    first = [desk.ticket(customer=f"c{i}")["id"] for i in range(8)]  # every agent full
    waiting = [desk.ticket(customer=f"w{i}")["id"] for i in range(12)]
    rt = desk.rt
    barrier = threading.Barrier(8)
    errors = []

    def resolve(tid):
        try:
            barrier.wait()
            with rt.uow() as uow:
                rules.set_status(uow, load_calendar(uow.session), tid, "resolved", "t", rt.clock.now())
                uow.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=resolve, args=(tid,)) for tid in first]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    from service_desk import jobs
    jobs.route_waiting(rt)  # whatever a skipped row left behind
    with rt.engine.connect() as c:
        counts = dict(c.execute(select(agents.c.user_id, agents.c.open_count)).all())
        assigned = c.execute(select(func.count()).select_from(tickets).where(
            tickets.c.id.in_(waiting), tickets.c.assignee_id.is_not(None))).scalar_one()
    assert counts == {f"a{i}": 2 for i in range(4)}
    assert assigned == 8
