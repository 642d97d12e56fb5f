"""Transactional outbox and idempotent inbox, on SQLite and PostgreSQL, embedded bus and RabbitMQ."""
import contextlib
import threading

import pytest
from sqlalchemy import func, select

from crm_shared import context
from crm_shared.bus import Delivery, Outcome
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_counts, demo_settings, make_demo_service, wait_until
from crm_shared.worker import Worker


@pytest.fixture
def pair(database_url, bus_env, tmp_path):
    """A producing runtime and a consuming runtime (two databases, one bus)."""
    producer_def, consumer_def = make_demo_service("a", handles=()), make_demo_service("b")
    consumer_url = f"sqlite:///{tmp_path}/b.db"
    p = Runtime(producer_def, demo_settings("a", database_url, bus_env.url, bus_env.namespace))
    c = Runtime(consumer_def, demo_settings("b", consumer_url, bus_env.url, bus_env.namespace))
    for rt in (p, c):
        rt.definition.metadata.create_all(rt.engine)
    bus_env.services |= {"a", "b"}
    c.bus.declare_consumer("b", ["lead.created"], c.settings.retry_delays_ms)
    yield p, c
    p.close()
    c.close()


def emit_note(rt, text="hello", fail=False):
    notes = rt.definition.metadata.tables["notes"]
    with rt.uow() as uow:
        nid = uow.session.execute(notes.insert().values(text=text, author_id="u1", priority=0,
                                                        created_at=rt.clock.now())).inserted_primary_key[0]
        env = uow.emit("lead.created", {"lead_id": str(nid), "status": "new", "name": text},
                       aggregate_type="note", aggregate_id=nid)
        if fail:
            raise RuntimeError("the request failed after emitting")
        uow.commit()
    return env


def count(rt, table, where=None):
    t = rt.definition.metadata.tables[table]
    q = select(func.count()).select_from(t)
    if where is not None:
        q = q.where(where(t))
    with rt.engine.connect() as c:
        return c.execute(q).scalar_one()


def test_state_and_events_commit_together_or_not_at_all(pair):
    p, _ = pair
    with pytest.raises(RuntimeError):
        emit_note(p, fail=True)
    assert count(p, "notes") == 0 and count(p, "outbox") == 0
    emit_note(p)
    assert count(p, "notes") == 1 and count(p, "outbox") == 1


def test_relay_publishes_in_commit_order_and_handler_applies_each_once(pair):
    p, c = pair
    sent = [emit_note(p, f"n{i}") for i in range(120)]
    assert Relay(p, batch=50).drain() == 120
    assert count(p, "outbox", lambda t: t.c.published_at.is_(None)) == 0
    seen = []
    dispatcher = Dispatcher(c, c.definition.handlers)
    stop = threading.Event()

    def cb(d):
        seen.append(d.message_id)
        if len(seen) == 120:
            stop.set()
        return dispatcher(d)

    c.bus.consume("b", cb, stop)
    assert seen == [e.id for e in sent]
    counts = demo_counts(c.engine, c.definition.metadata)
    assert len(counts) == 120 and set(counts.values()) == {1}


def test_same_event_delivered_twice_changes_state_once(pair):
    p, c = pair
    env = emit_note(p)
    Relay(p).drain()
    Relay(p).drain()
    # the broker hands the consumer the same event twice (e.g. a relay crash before marking it sent)
    p.bus.publish([__import__("crm_shared.bus", fromlist=["OutgoingMessage"]).OutgoingMessage(
        env.id, env.type, env.to_json().encode())])
    w = Worker(c, relay=False, schedule=False).start()
    try:
        wait_until(lambda: c.bus.queue_depth("b") == 0 and demo_counts(c.engine, c.definition.metadata),
                   message="both deliveries handled")
    finally:
        w.shutdown()
    assert demo_counts(c.engine, c.definition.metadata) == {env.id: 1}
    assert count(c, "processed_events") == 1
    d = Dispatcher(c, c.definition.handlers)
    assert d(Delivery(env.id, env.type, env.to_json().encode(), 0)) == (Outcome.ACK, None, 0)
    assert demo_counts(c.engine, c.definition.metadata) == {env.id: 1}


@pytest.mark.postgres
def test_concurrent_duplicate_deliveries_apply_once(pg_url, tmp_path):
    d = make_demo_service("b")
    rt = Runtime(d, demo_settings("b", pg_url, f"sqlite:///{tmp_path}/bus.db", "x"))
    d.metadata.create_all(rt.engine)
    env = Envelope(type="lead.created", payload={"lead_id": "1", "status": "new"}, producer="a")
    dispatcher = Dispatcher(rt, d.handlers)
    barrier = threading.Barrier(8)
    results = []

    def go():
        barrier.wait()
        results.append(dispatcher(Delivery(env.id, env.type, env.to_json().encode(), 0)))

    threads = [threading.Thread(target=go) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r[0] is Outcome.ACK for r in results)
    assert demo_counts(rt.engine, d.metadata) == {env.id: 1}
    rt.close()


def test_poison_event_is_dead_lettered_then_replayed_once_fixed(pair):
    p, c = pair
    switches = c.definition.metadata.tables["switches"]
    with c.engine.begin() as conn:
        conn.execute(switches.insert().values(name="fail", on=1))
    poison = emit_note(p, "poison")
    after = [emit_note(p, f"ok{i}") for i in range(5)]
    w = Worker(c, relay=False, schedule=False).start()
    wr = Worker(p, consume=False, schedule=False).start()
    try:
        wait_until(lambda: len(c.bus.dead_letters("b")) == 1, message="dead letter")
        counts = demo_counts(c.engine, c.definition.metadata)
        assert set(counts) == {e.id for e in after}, "the queue kept flowing behind the poison message"
        (dead,) = c.bus.dead_letters("b")
        assert dead.message_id == poison.id and "told to fail" in dead.error and dead.attempts == 4
        with c.engine.begin() as conn:
            conn.execute(switches.update().values(on=0))
        assert c.bus.replay("b") == 1
        wait_until(lambda: poison.id in demo_counts(c.engine, c.definition.metadata), message="replayed event")
    finally:
        w.shutdown()
        wr.shutdown()
    assert demo_counts(c.engine, c.definition.metadata)[poison.id] == 1


def test_invalid_event_goes_straight_to_dead_letters(pair):
    _, c = pair
    bad = Envelope(type="lead.created", payload={"status": "new"}, producer="a")  # lead_id missing
    decision = Dispatcher(c, c.definition.handlers)(Delivery(bad.id, bad.type, bad.to_json().encode(), 0))
    assert decision[0] is Outcome.DEAD and "lead_id" in decision[1]
    assert Dispatcher(c, c.definition.handlers)(Delivery("x", "lead.created", b"{nope", 0))[0] is Outcome.DEAD


def test_correlation_and_causation_flow_from_request_to_handler(pair):
    p, c = pair
    with context.bound("req-42"):
        env = emit_note(p)
    assert env.correlation_id == "req-42"
    Relay(p).drain()
    caused = {}

    def handler(uow, e, payload):
        caused["event"] = uow.emit("lead.assigned", {"lead_id": "1", "owner_id": "u1", "reason": "auto"},
                                   aggregate_type="lead", aggregate_id=1)
    Dispatcher(c, {"lead.created": handler})(Delivery(env.id, env.type, env.to_json().encode(), 0))
    assert caused["event"].correlation_id == "req-42" and caused["event"].causation_id == env.id
    assert count(c, "outbox") == 1


def test_relay_wakes_on_commit_not_on_a_long_timer(database_url, bus_env, tmp_path):
    d, cd = make_demo_service("a", handles=()), make_demo_service("b")
    p = Runtime(d, demo_settings("a", database_url, bus_env.url, bus_env.namespace, relay_poll_ms=60_000))
    c = Runtime(cd, demo_settings("b", f"sqlite:///{tmp_path}/b.db", bus_env.url, bus_env.namespace))
    for rt in (p, c):
        rt.definition.metadata.create_all(rt.engine)
    bus_env.services |= {"a", "b"}
    c.bus.declare_consumer("b", ["lead.created"], c.settings.retry_delays_ms)
    wr, wc = Worker(p, consume=False, schedule=False).start(), Worker(c, relay=False, schedule=False).start()
    try:
        import time
        time.sleep(0.3)  # the relay is now asleep on its 60 s timer
        if p.is_postgres:
            # written by another process's runtime: only NOTIFY can wake this relay
            writer = Runtime(d, p.settings)
            env = emit_note(writer)
        else:
            env = emit_note(p)
        wait_until(lambda: env.id in demo_counts(c.engine, cd.metadata), timeout=5, message="event delivered")
    finally:
        wr.shutdown()
        wc.shutdown()
        p.close()
        c.close()


def test_scheduler_runs_jobs(database_url, bus_env):
    d = make_demo_service("a", handles=())
    rt = Runtime(d, demo_settings("a", database_url, bus_env.url, bus_env.namespace))
    d.metadata.create_all(rt.engine)
    bus_env.services.add("a")
    w = Worker(rt, consume=False, relay=False).start()
    try:
        wait_until(lambda: count(rt, "ticks") >= 2, message="two ticks")
    finally:
        w.shutdown()
        rt.close()


def test_no_reader_sees_a_row_sent_before_its_confirm_and_a_failed_publish_leaves_all_pending(pair):
    """The relay marks its batch sent in the batch's own transaction before publishing: the mark
    must stay invisible until the broker has confirmed (COMMIT after publish), and vanish if the
    publish fails."""
    from crm_shared.bus import BusError
    p, _ = pair
    sent = [emit_note(p, f"n{i}") for i in range(30)]
    pending_while_publishing = []
    real = p.bus.publish

    def pending_seen_by_another_connection():
        if p.is_postgres:
            return count(p, "outbox", lambda t: t.c.published_at.is_(None))
        import sqlite3  # our SQLite engine begins every transaction IMMEDIATE: read beside it, as WAL allows
        with contextlib.closing(sqlite3.connect(p.engine.url.database)) as raw:
            return raw.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]

    def publish(messages, fail=False):
        pending_while_publishing.append(pending_seen_by_another_connection())
        if fail:
            raise BusError("broker gone")
        return real(messages)

    p.bus.publish = lambda ms: publish(ms, fail=True)
    with pytest.raises(BusError):
        Relay(p, batch=20).run_once()
    assert count(p, "outbox", lambda t: t.c.published_at.is_(None)) == 30
    assert count(p, "outbox", lambda t: (t.c.attempts == 1) & t.c.last_error.is_not(None)) == 20
    p.bus.publish = publish
    relay = Relay(p, batch=20)
    assert relay.run_once() == 20 and relay.run_once() == 10 and relay.run_once() == 0
    assert pending_while_publishing == [30, 30, 10]  # a reader saw nothing sent before the confirms
    with p.engine.connect() as conn:
        ob = p.outbox
        rows = conn.execute(select(ob.c.event_id, ob.c.attempts).order_by(ob.c.id)).all()
    assert [r.event_id for r in rows] == [e.id for e in sent]
    assert [r.attempts for r in rows] == [2] * 20 + [1] * 10
