"""A consumer batch reads each recipient (and their preferences) once, however many of its events
reach them; a customer written by an earlier event of the same batch is read anew."""
from __future__ import annotations

from sqlalchemy import event

from crm_shared.bus import Delivery


def _deliveries(env, envs):
    return [Delivery(e.id, e.type, e.to_json().encode(), 0) for e in envs]


def _count_person_reads(env):
    """A list that grows by one per SELECT of the recipients table (the planner's person read)."""
    reads = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        head = statement.lstrip().upper()
        if head.startswith("SELECT") and "RECIPIENTS" in head and "PREFERENCES" in head:
            reads.append(parameters)

    event.listen(env.rt.engine, "before_cursor_execute", seen)
    return reads, lambda: event.remove(env.rt.engine, "before_cursor_execute", seen)


def _assigned(env, n, owner):
    return env.envelope("lead.assigned", {"lead_id": str(n), "owner_id": owner, "reason": "auto", "name": f"客户{n}"})


def test_a_batch_reads_each_recipient_once(env_db):
    env = env_db
    env.recipient("rep1")
    env.recipient("rep2", language="en")
    batch = [_assigned(env, n, "rep1" if n % 2 else "rep2") for n in range(1, 7)]
    reads, stop = _count_person_reads(env)
    try:
        decisions = env.dispatcher.handle_batch(_deliveries(env, batch))
    finally:
        stop()
    assert [d[0].value for d in decisions] == ["ack"] * 6
    assert len(reads) == 2, reads  # rep1 and rep2, not once per event
    for e in batch:  # each event still planned for its own rep, in their language
        rows = env.deliveries(event_id=e.id)
        owner = e.payload["owner_id"]
        assert {(r.recipient, r.channel) for r in rows} >= {(owner, "inbox"), (owner, "email")}
        assert {r.language for r in rows} == {"en" if owner == "rep2" else "zh-CN"}

    # the next batch reads them again (a change made in between is seen)
    env.recipient("rep1", language="en")
    reads, stop = _count_person_reads(env)
    try:
        later = [_assigned(env, n, "rep1") for n in (7, 8)]
        env.dispatcher.handle_batch(_deliveries(env, later))
    finally:
        stop()
    assert len(reads) == 1
    assert {r.language for r in env.deliveries(event_id=later[1].id)} == {"en"}


def test_a_customer_written_earlier_in_the_batch_is_read_anew(env_db):
    env = env_db
    resolved = {"customer_id": "c1", "type": "complaint", "priority": "high", "queue": "complaints", "csat_token": "t"}
    batch = [env.envelope("ticket.resolved", {**resolved, "ticket_id": "T1"}),  # notify does not know c1 yet
             env.envelope("customer.created", {"customer_id": "c1", "name": "Acme", "email": "boss@acme.example",
                                               "language": "zh-CN", "revision": 1}),
             env.envelope("ticket.resolved", {**resolved, "ticket_id": "T2"}),
             env.envelope("customer.updated", {"customer_id": "c1", "name": "Acme", "email": "boss@acme.example",
                                               "language": "en", "revision": 2}),
             env.envelope("ticket.resolved", {**resolved, "ticket_id": "T3"})]
    decisions = env.dispatcher.handle_batch(_deliveries(env, batch))
    assert [d[0].value for d in decisions] == ["ack"] * 5
    assert env.deliveries(event_id=batch[0].id) == []  # no such customer when it was handled
    [(t2)] = env.deliveries(event_id=batch[2].id)
    [(t3)] = env.deliveries(event_id=batch[4].id)
    assert (t2.recipient, t2.channel, t2.language) == ("customer:c1", "email", "zh-CN")
    assert (t3.recipient, t3.channel, t3.language) == ("customer:c1", "email", "en")
