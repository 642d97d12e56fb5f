"""The bus contract, run on the embedded transport and on RabbitMQ alike."""
import threading
import time
import uuid

import pytest

from conftest import DEMO_DELAYS
from crm_shared.bus import Outcome, OutgoingMessage
from crm_shared.bus.sqlite import SqliteBus, topic_matches
from crm_shared.bus.base import Topology
from crm_shared.testing import wait_until


def msg(key="lead.created", n=0):
    return OutgoingMessage(str(uuid.uuid4()), key, f'{{"n": {n}}}'.encode())


class Collector:
    """A consumer thread that records what it is given and answers with `decide`."""

    def __init__(self, bus, service, decide=None):
        self.got, self.stop = [], threading.Event()
        self.decide = decide or (lambda d: (Outcome.ACK, None, 0))
        self.thread = threading.Thread(target=bus.consume, args=(service, self._cb, self.stop), kwargs={"prefetch": 50})

    def _cb(self, d):
        self.got.append(d)
        return self.decide(d)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_each_consuming_service_gets_its_own_copy(bus_env):
    bus = bus_env.connect()
    bus.declare_consumer("a", ["lead.created", "lead.assigned"], DEMO_DELAYS)
    bus.declare_consumer("b", ["lead.created"], DEMO_DELAYS)
    sent = [msg("lead.created", i) for i in range(50)] + [msg("lead.assigned", 99)]
    assert bus.publish(sent) == set()
    with Collector(bus, "a") as a, Collector(bus, "b") as b:
        wait_until(lambda: len(a.got) == 51 and len(b.got) == 50, message="both copies")
        time.sleep(0.3)
    assert [d.message_id for d in a.got] == [m.message_id for m in sent]  # one publisher, one consumer: in order
    assert {d.routing_key for d in b.got} == {"lead.created"}
    assert bus.queue_depth("a") == 0 and bus.queue_depth("b") == 0


def test_unroutable_messages_are_reported_not_lost_silently(bus_env):
    bus = bus_env.connect()
    bus.declare_consumer("a", ["lead.created"], DEMO_DELAYS)
    nobody = msg("lead.disqualified")
    assert bus.publish([msg("lead.created"), nobody]) == {nobody.message_id}


def test_failing_message_is_retried_then_dead_lettered_while_others_flow(bus_env):
    bus = bus_env.connect()
    bus.declare_consumer("a", ["lead.created"], DEMO_DELAYS)
    poison, *good = [msg(n=i) for i in range(20)]
    bus.publish([poison] + good)

    def decide(d):
        if d.message_id != poison.message_id:
            return Outcome.ACK, None, 0
        if d.attempts < len(DEMO_DELAYS):
            return Outcome.RETRY, f"boom {d.attempts}", DEMO_DELAYS[d.attempts]
        return Outcome.DEAD, "boom for good", 0

    with Collector(bus, "a", decide) as c:
        wait_until(lambda: len(bus.dead_letters("a")) == 1, message="dead letter")
        tries = [d for d in c.got if d.message_id == poison.message_id]
        good_seen = {d.message_id for d in c.got if d.message_id != poison.message_id}
    assert [d.attempts for d in tries] == [0, 1, 2, 3]  # first try + 3 retries
    assert good_seen == {m.message_id for m in good}
    assert c.got.index(tries[0]) == 0 and c.got.index(tries[1]) > 1, "later messages did not wait for the retries"
    (dead,) = bus.dead_letters("a")
    assert dead.message_id == poison.message_id and dead.error == "boom for good" and dead.routing_key == "lead.created"
    assert bus.replay("a", ["not-there"]) == 0
    assert bus.replay("a") == 1
    assert bus.dead_letters("a") == []
    with Collector(bus, "a") as c2:
        wait_until(lambda: c2.got, message="replayed message")
    assert c2.got[0].message_id == poison.message_id and c2.got[0].routing_key == "lead.created"


def test_unacknowledged_message_is_redelivered_after_consumer_dies(bus_env):
    bus = bus_env.connect()
    bus.declare_consumer("a", ["lead.created"], DEMO_DELAYS)
    m = msg()
    bus.publish([m])
    if bus_env.kind == "embedded":
        # a consumer that claimed the message and then vanished (its lease is never settled)
        ghost = SqliteBus(bus_env.url, Topology(bus_env.namespace), lease_seconds=1)
        assert len(ghost._claim(bus.topology.queue("a"), 10)) == 1
        assert bus.queue_depth("a") == 1
    else:
        from kombu import Connection
        conn = Connection(bus_env.url)
        ch = conn.channel()
        assert ch.basic_get(bus.topology.queue("a"), no_ack=False) is not None
        conn.release()  # connection dropped without ack: the broker requeues
    with Collector(bus, "a") as c:
        wait_until(lambda: c.got, timeout=10, message="redelivery")
    assert c.got[0].message_id == m.message_id


def test_topic_matching():
    assert topic_matches("lead.created", "lead.created")
    assert topic_matches("lead.*", "lead.created") and not topic_matches("lead.*", "lead.a.b")
    assert topic_matches("lead.#", "lead") and topic_matches("#", "a.b.c") and topic_matches("#.b", "a.b")
    assert not topic_matches("lead.created", "lead.assigned")


def test_sqlite_bus_shares_bindings_between_processes(tmp_path):
    """Bindings live in the file: a publisher that never declared anything routes to them."""
    url = f"sqlite:///{tmp_path}/bus.db"
    consumer_side = SqliteBus(url, Topology("x"))
    consumer_side.declare_consumer("a", ["lead.created"])
    publisher_side = SqliteBus(url, Topology("x"))
    assert publisher_side.publish([msg()]) == set()
    assert consumer_side.queue_depth("a") == 1


def test_connect_refuses_unknown_urls():
    from crm_shared.bus import connect
    with pytest.raises(ValueError):
        connect("filesystem:///tmp/x")
