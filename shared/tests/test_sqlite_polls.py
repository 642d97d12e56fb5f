"""Embedded default: an empty poll of the SQLite bus or of the relay on SQLite takes no lock, and a
consumer that polls slowly when idle still wakes on the first commit to the bus file."""
import contextlib
import sqlite3
import threading
import time
import uuid

from crm_shared.bus import Outcome, OutgoingMessage
from crm_shared.bus.base import Topology
from crm_shared.bus.sqlite import SqliteBus
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, make_demo_service, wait_until


def msg(key="lead.created"):
    return OutgoingMessage(str(uuid.uuid4()), key, b'{"n": 1}')


@contextlib.contextmanager
def write_lock(path):
    """Another connection holds the file's write lock (as a busy writer does) until the block ends."""
    c = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        c.execute("BEGIN IMMEDIATE")
        yield
        c.execute("ROLLBACK")
    finally:
        c.close()


def consume_in_thread(bus, service, got, stop):
    def cb(d):
        got.append((d.message_id, time.monotonic()))
        return Outcome.ACK, None, 0
    t = threading.Thread(target=bus.consume, args=(service, cb, stop))
    t.start()
    return t


def test_an_idle_consumer_never_waits_for_the_write_lock(tmp_path):
    """With a writer holding the lock, an empty poll used to block in BEGIN IMMEDIATE (up to the
    30 s busy timeout); now it reads, finds nothing and the consumer stops at once when asked."""
    path = f"{tmp_path}/bus.db"
    bus = SqliteBus(f"sqlite:///{path}", Topology("x"))
    bus.declare_consumer("a", ["lead.created"])
    got, stop = [], threading.Event()
    with write_lock(path):
        t = consume_in_thread(bus, "a", got, stop)
        time.sleep(0.5)  # many polls, including the timed ones (every 50 ms)
        stop.set()
        t.join(2)
        assert not t.is_alive(), "an empty poll waited for the write lock"
    assert got == []


def test_an_idle_consumer_wakes_on_another_connections_commit_not_on_its_timer(tmp_path):
    """Between its timed re-checks (here every 60 s) the consumer reads only `PRAGMA data_version`:
    a publish from another connection (another process, in production) is consumed at once."""
    url = f"sqlite:///{tmp_path}/bus.db"
    bus = SqliteBus(url, Topology("x"), poll_interval=0.005, idle_poll_interval=60, idle_after=60)
    bus.declare_consumer("a", ["lead.created"])
    publisher = SqliteBus(url, Topology("x"))
    got, stop = [], threading.Event()
    t = consume_in_thread(bus, "a", got, stop)
    try:
        time.sleep(0.3)  # queue seen empty: from now on only data_version is read
        for i in range(3):
            m = msg()
            sent = time.monotonic()
            assert publisher.publish([m]) == set()
            wait_until(lambda: len(got) == i + 1, timeout=5, message="consumed on the commit")
            assert got[-1][0] == m.message_id
            assert got[-1][1] - sent < 2
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(10)
    assert bus.queue_depth("a") == 0


def test_a_retry_comes_due_without_any_commit(tmp_path):
    """A retry's `visible_at` passing commits nothing (data_version stays): the timed re-check finds it."""
    url = f"sqlite:///{tmp_path}/bus.db"
    bus = SqliteBus(url, Topology("x"), idle_after=0)
    bus.declare_consumer("a", ["lead.created"])
    bus.publish([msg()])
    seen, stop = [], threading.Event()

    def cb(d):
        seen.append(d.attempts)
        return (Outcome.RETRY, "later", 300) if d.attempts == 0 else (Outcome.ACK, None, 0)
    t = threading.Thread(target=bus.consume, args=("a", cb, stop))
    t.start()
    try:
        wait_until(lambda: seen == [0, 1], timeout=5, message="retried once")
    finally:
        stop.set()
        t.join(10)
    assert bus.queue_depth("a") == 0


def test_an_empty_relay_poll_on_sqlite_takes_no_lock(tmp_path):
    d = make_demo_service("a", handles=())
    db = f"{tmp_path}/a.db"
    rt = Runtime(d, demo_settings("a", f"sqlite:///{db}", f"sqlite:///{tmp_path}/bus.db", "x"))
    d.metadata.create_all(rt.engine)
    relay = Relay(rt)
    try:
        result = []
        with write_lock(db):
            t = threading.Thread(target=lambda: result.append(relay.run_once()), daemon=True)
            t.start()
            t.join(2)
            assert result == [0], "an empty relay poll waited for the write lock"
        # and a pending row is still seen and published
        with rt.uow() as uow:
            uow.emit("lead.created", {"lead_id": "1", "status": "new", "name": "x"}, aggregate_type="note",
                     aggregate_id=1)
            uow.commit()
        assert relay.run_once() == 1 and relay.run_once() == 0
    finally:
        rt.close()


def test_a_consumer_with_nothing_to_do_stays_slow_while_other_queues_are_busy(tmp_path):
    """Traffic for another service changes the file every few ms; a consumer whose own queue has
    been empty for `idle_after` looks at most every `idle_poll_interval`, and still takes its own
    next message within about that."""
    url = f"sqlite:///{tmp_path}/bus.db"
    bus = SqliteBus(url, Topology("x"), poll_interval=0.002, idle_poll_interval=0.05, idle_after=0.2)
    bus.declare_consumer("quiet", ["quiet.event"])
    other = SqliteBus(url, Topology("x"))
    other.declare_consumer("busy", ["lead.created"])
    looks = []
    ready = bus._ready
    bus._ready = lambda queue: looks.append(time.monotonic()) or ready(queue)
    got, stop = [], threading.Event()
    t = consume_in_thread(bus, "quiet", got, stop)
    try:
        time.sleep(0.4)  # idle by now
        looks.clear()
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # another queue's traffic: a commit every ~3 ms
            other.publish([msg()])
            time.sleep(0.003)
        span = time.monotonic() - started
        assert len(looks) <= span / 0.05 + 3, f"{len(looks)} looks in {span:.2f} s: it should stay slow"
        m = msg("quiet.event")
        sent = time.monotonic()
        other.publish([m])
        wait_until(lambda: len(got) == 1, timeout=5, message="its own message")
        assert got[0][0] == m.message_id and got[0][1] - sent < 0.5
    finally:
        stop.set()
        t.join(10)
