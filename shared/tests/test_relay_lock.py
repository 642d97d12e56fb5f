"""The relay on PostgreSQL: one active relay per service, holding a session-level advisory lock on a
connection of its own; the others stand by. A terminated backend (`pg_terminate_backend`, as in a
server restart) ends the session and the lock: a standby takes over, the relay itself reconnects,
and nothing is lost, doubled or reordered on the wire."""
import threading

import pytest
from sqlalchemy import func, select, text

from crm_shared.bus import Outcome
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, make_demo_service, wait_until

pytestmark = pytest.mark.postgres


class Side:
    """A relay process's share: its own runtime (own pool), a `Relay.run` thread, and a record of
    every message it handed to the bus (batches, and what it added while their confirms were out)."""

    def __init__(self, definition, settings):
        self.rt = Runtime(definition, settings)
        self.relay = Relay(self.rt)
        self.relay.STANDBY_RETRY = 0.3
        self.published: list[str] = []
        real = self.rt.bus.publish

        def publish(messages):
            self.published += [m.message_id for m in messages]
            return real(messages)

        self.rt.bus.publish = publish
        top_up = self.rt.bus.topping_up

        def topping_up(more):  # what the relay adds while the confirms are outstanding (RabbitMQ)
            def recorded():
                extra = more()
                self.published += [m.message_id for m in extra]
                return extra
            return top_up(recorded)

        self.rt.bus.topping_up = topping_up
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.relay.run, args=(self.stop,), daemon=True)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.rt.close()


@pytest.fixture
def relay_env(pg_url, bus_env):
    d, cd = make_demo_service("a", handles=()), make_demo_service("b")
    # a long poll: a relay looks at the database only when woken (NOTIFY) or, standing by, to retry the lock
    settings = demo_settings("a", pg_url, bus_env.url, bus_env.namespace, relay_poll_ms=60_000)
    writer = Runtime(d, settings)
    d.metadata.create_all(writer.engine)
    bus_env.services |= {"a", "b"}
    consumer = Runtime(cd, demo_settings("b", pg_url, bus_env.url, bus_env.namespace))
    consumer.bus.declare_consumer("b", ["lead.created"], consumer.settings.retry_delays_ms)
    sides = []

    def side():
        s = Side(d, settings)
        sides.append(s)
        return s

    yield writer, consumer, side
    for s in sides:
        s.close()
    writer.close()
    consumer.close()


def emit(rt, n, start=0):
    ids = []
    for i in range(start, start + n):
        with rt.uow() as uow:
            ids.append(uow.emit("lead.created", {"lead_id": str(i), "status": "new"},
                                aggregate_type="lead", aggregate_id=i).id)
            uow.commit()
    return ids


def pending(rt):
    ob = rt.outbox
    with rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(ob).where(ob.c.published_at.is_(None))).scalar_one()


def lock_holders(rt, key):
    """Backend pids holding the relay's advisory lock (a key below 2**32: classid 0, objid = key)."""
    with rt.engine.connect() as c:
        return c.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 "
                              "AND objid::bigint = :key AND database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database())"), {"key": key}).scalars().all()


def terminate(rt, pid):
    with rt.engine.connect() as c:
        assert c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


def on_the_wire(consumer, n):
    """The ids of the n messages waiting in b's queue, in queue order (a duplicate would show)."""
    wait_until(lambda: consumer.bus.queue_depth("b") >= n, message=f"{n} messages in the queue")
    assert consumer.bus.queue_depth("b") == n  # nothing doubled
    seen, stop = [], threading.Event()

    def cb(d):
        seen.append(d.message_id)
        if len(seen) == n:
            stop.set()
        return Outcome.ACK, None, 0

    consumer.bus.consume("b", cb, stop)
    return seen


def active_and_standby(side):
    """Two relays of one service: a takes the lock first, then b starts beside it."""
    a, b = side(), side()
    a.thread.start()
    wait_until(lambda: a.relay.active, message="the first relay holds the lock")
    b.thread.start()
    return a, b


def test_one_relay_publishes_the_other_stands_by_and_takes_over_when_the_active_backend_is_killed(relay_env):
    writer, consumer, side = relay_env
    a, b = active_and_standby(side)
    key = a.relay._lock_key
    first_pid = lock_holders(writer, key)

    ids = emit(writer, 30)
    wait_until(lambda: pending(writer) == 0, message="first events published")
    assert a.published == ids and b.published == []  # b stood by: it never claimed a row
    assert len(first_pid) == 1 and not b.relay.active
    assert Relay(writer).drain() == 0  # nor does an ad hoc drain while a relay holds the lock

    # a's backend is killed while a is idle: the session ends and the lock with it; b takes it
    terminate(writer, first_pid[0])
    wait_until(lambda: b.relay.active, message="the standby takes the lock")
    assert lock_holders(writer, key) not in ([], first_pid)
    more = emit(writer, 30, start=30)
    wait_until(lambda: pending(writer) == 0, message="events after the kill published")
    assert b.published == more and a.published == ids
    # a woke on the NOTIFY, found its connection gone, reconnected and stands by
    wait_until(lambda: not a.relay.active, message="the killed relay stands by")
    assert a.thread.is_alive() and b.thread.is_alive()

    # and back: b's backend killed, a (still running) takes over
    terminate(writer, lock_holders(writer, key)[0])
    wait_until(lambda: a.relay.active, message="the first relay takes the lock again")
    last = emit(writer, 30, start=60)
    wait_until(lambda: pending(writer) == 0, message="events after the second kill published")
    assert a.published == ids + last and b.published == more
    assert on_the_wire(consumer, 90) == ids + more + last  # in commit order, each once


def test_the_relay_survives_its_own_backend_being_terminated_and_loses_no_row(relay_env):
    """Killed between batches, the relay reconnects and takes the lock again; killed between its
    publish and its COMMIT, the batch stays pending (its mark dies with the transaction) and is
    published again: at least once, never lost (the consumers' inbox drops the copy)."""
    writer, consumer, side = relay_env
    a = side()
    a.thread.start()
    wait_until(lambda: a.relay.active, message="the relay holds the lock")
    key = a.relay._lock_key
    ids = emit(writer, 10)
    wait_until(lambda: pending(writer) == 0, message="first events published")
    terminate(writer, lock_holders(writer, key)[0])  # between batches

    more = emit(writer, 10, start=10)
    wait_until(lambda: pending(writer) == 0, message="events after the kill published")
    assert a.published == ids + more and a.thread.is_alive()

    # killed while its batch is on the wire: the COMMIT fails, the rows stay pending and go out again
    inner = a.rt.bus.publish
    killed = []

    def publish_then_die(messages):
        unroutable = inner(messages)
        if not killed:
            killed.append(lock_holders(writer, key)[0])
            terminate(writer, killed[0])
        return unroutable

    a.rt.bus.publish = publish_then_die
    last = emit(writer, 10, start=20)
    wait_until(lambda: pending(writer) == 0, message="the killed batch published again")
    assert killed and lock_holders(writer, key) not in ([], killed)
    assert set(a.published[20:]) == set(last) and len(a.published) > 30  # the batch went out again
    assert a.published[:20] == ids + more
    wire = on_the_wire(consumer, len(a.published))
    assert wire == a.published and set(wire) == set(ids + more + last)


def test_stopping_the_active_relay_hands_the_lock_to_a_standby(relay_env):
    writer, _, side = relay_env
    a, b = active_and_standby(side)
    key = a.relay._lock_key
    a.stop.set()
    a.thread.join(10)
    assert not a.thread.is_alive() and not a.relay.active
    wait_until(lambda: b.relay.active, message="the standby takes the lock")
    assert len(lock_holders(writer, key)) == 1
    ids = emit(writer, 5)
    wait_until(lambda: pending(writer) == 0, message="published by the standby")
    assert b.published == ids and a.published == []


@pytest.fixture
def amqp_pg(pg_url, rabbit_env):
    d = make_demo_service("a", handles=())
    rt = Runtime(d, demo_settings("a", pg_url, rabbit_env.url, rabbit_env.namespace))
    d.metadata.create_all(rt.engine)
    rabbit_env.services |= {"a", "b"}
    rt.bus.declare_consumer("b", ["lead.created"], rt.settings.retry_delays_ms)
    yield rt
    rt.close()


def test_rows_committed_while_the_confirms_are_outstanding_go_out_at_once_in_the_same_batch(amqp_pg):
    """Streaming (`Relay.run`): rows that commit while a batch waits for its confirms are claimed in
    the batch's transaction and sent at once, after the batch; the COMMIT waits for their confirms
    too, so no reader sees them sent before."""
    rt = amqp_pg
    first = emit(rt, 10)
    relay = Relay(rt)
    relay.streaming = True
    real, seen = rt.bus.publish, {}
    later = []

    def publish(messages):
        later.extend(emit(rt, 5, start=10))  # commit while the batch is on its way: sets the wake
        unroutable = real(messages)
        seen["unconfirmed"] = dict(rt.bus._pending)
        seen["pending"] = pending(rt)  # all confirms in, COMMIT not yet
        return unroutable

    rt.bus.publish = publish
    rt.outbox_wake.clear()
    assert relay.run_once() == 15
    assert seen == {"unconfirmed": {}, "pending": 15}
    assert pending(rt) == 0
    relay.close()
    assert on_the_wire(rt, 15) == first + later


def test_a_failure_after_topping_up_leaves_the_whole_batch_pending(amqp_pg):
    from crm_shared.bus import BusError
    rt = amqp_pg
    emit(rt, 10)
    relay = Relay(rt)
    relay.streaming = True
    real_send, sent = rt.bus._send, []

    def send(conn, ch, messages, deadline):
        real_send(conn, ch, messages, deadline)
        sent.append(len(messages))
        if len(sent) == 1:
            emit(rt, 5, start=10)
        elif messages:  # the topped-up rows are on the wire: now the broker "fails"
            raise BusError("broker gone")

    rt.bus._send = send
    rt.outbox_wake.clear()
    with pytest.raises(BusError):
        relay.run_once()
    assert sent[0] == 10 and sent[-1] == 5
    assert pending(rt) == 15 and not relay.active
    ob = rt.outbox
    with rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(ob).where(ob.c.last_error.is_not(None))).scalar_one() == 15
