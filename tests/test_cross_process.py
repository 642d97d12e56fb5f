"""The bus across real processes: events committed by one service process reach handlers in
others, survive a broker outage, a SIGKILL of every worker, and a SIGTERM, each applied once."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from crm_shared.runtime import Runtime
from crm_shared.testing import demo_counts, demo_settings, make_demo_service, wait_until
from crm_shared.web import create_service_app
from crm_shared.web.auth import dev_token
from crm_shared.config import DEV_JWT_SECRET


class Proc:
    """A demo worker in its own process."""

    def __init__(self, name, db_url, bus_env, handles="lead.created"):
        self.args = [sys.executable, "-m", "crm_shared.testing", "worker", name, db_url, bus_env.url,
                     bus_env.namespace, "--handles", handles]
        self.p = None
        self.log = os.path.join(os.path.dirname(db_url.split("///", 1)[-1]) if db_url.startswith("sqlite") else
                                os.environ.get("TMPDIR", "/tmp"), f"worker-{name}-{os.getpid()}.log")
        bus_env.services.add(name)

    def start(self):
        env = dict(os.environ, LOG_LEVEL="INFO")
        with open(self.log, "ab") as log:
            self.p = subprocess.Popen(self.args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout)
        return self.p.returncode


def producer(tmp_path, bus_env, database_url=None):
    d = make_demo_service("a", handles=())
    rt = Runtime(d, demo_settings("a", database_url or f"sqlite:///{tmp_path}/a.db", bus_env.url, bus_env.namespace))
    d.metadata.create_all(rt.engine)
    return d, rt


def emit_many(rt, n, start=0):
    notes = rt.definition.metadata.tables["notes"]
    ids = []
    for i in range(start, start + n):
        with rt.uow() as uow:
            nid = uow.session.execute(notes.insert().values(text=f"n{i}", author_id="u", priority=0,
                                                            created_at=rt.clock.now())).inserted_primary_key[0]
            ids.append(uow.emit("lead.created", {"lead_id": str(nid), "status": "new"}, aggregate_type="note",
                                aggregate_id=nid).id)
            uow.commit()
    return ids


def consumer_counts(url):
    d = make_demo_service("x")
    from crm_shared import db
    e = db.make_engine(url)
    try:
        return demo_counts(e, d.metadata)
    except Exception:
        return {}
    finally:
        e.dispose()


def declare(bus_env, *names):
    bus = bus_env.connect()
    for n in names:
        bus.declare_consumer(n, ["lead.created"], (100, 200, 300))
        bus_env.services.add(n)


def test_event_committed_in_one_process_is_handled_in_another(bus_env, tmp_path):
    d, rt = producer(tmp_path, bus_env)
    declare(bus_env, "b")
    relay = Proc("a", rt.settings.database_url, bus_env, handles="").start()
    b_url = f"sqlite:///{tmp_path}/b.db"
    consumer = Proc("b", b_url, bus_env).start()
    try:
        (eid,) = emit_many(rt, 1)
        wait_until(lambda: consumer_counts(b_url) == {eid: 1}, timeout=20, message="handled in the other process")
    finally:
        assert consumer.stop() == 0 and relay.stop() == 0
        rt.close()


@pytest.mark.slow
def test_every_event_applied_exactly_once_in_every_subscriber_after_sigkill(bus_env, tmp_path):
    """2,000 events; every worker process SIGKILLed halfway, restarted: each subscriber applies each
    event exactly once."""
    d, rt = producer(tmp_path, bus_env)
    declare(bus_env, "b", "c")
    ids = emit_many(rt, 2000)
    urls = {"b": f"sqlite:///{tmp_path}/b.db", "c": f"sqlite:///{tmp_path}/c.db"}
    procs = [Proc("a", rt.settings.database_url, bus_env, handles="")] + [Proc(n, u, bus_env) for n, u in urls.items()]
    for p in procs:
        p.start()
    wait_until(lambda: len(consumer_counts(urls["b"])) >= 700, timeout=60, interval=0.02, message="halfway")
    for p in procs:
        p.stop(signal.SIGKILL)
    half = {n: len(consumer_counts(u)) for n, u in urls.items()}
    assert any(v < 2000 for v in half.values()), f"killed too late to prove anything: {half}"
    for p in procs:
        p.start()
    try:
        for n, u in urls.items():
            wait_until(lambda: len(consumer_counts(u)) == 2000, timeout=90, interval=0.2, message=f"{n} complete")
            counts = consumer_counts(u)
            assert set(counts) == set(ids) and set(counts.values()) == {1}, f"{n}: duplicates or losses"
    finally:
        for p in procs:
            p.stop()
        rt.close()


def test_sigterm_stops_a_worker_cleanly_without_losing_messages(bus_env, tmp_path):
    d, rt = producer(tmp_path, bus_env)
    declare(bus_env, "b")
    ids = emit_many(rt, 400)
    from crm_shared.outbox import Relay
    Relay(rt).drain()
    b_url = f"sqlite:///{tmp_path}/b.db"
    w = Proc("b", b_url, bus_env).start()
    wait_until(lambda: len(consumer_counts(b_url)) >= 50, timeout=30, interval=0.01, message="started consuming")
    t0 = time.monotonic()
    assert w.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 15
    w.start()
    try:
        wait_until(lambda: len(consumer_counts(b_url)) == 400, timeout=60, message="all handled")
        assert set(consumer_counts(b_url).values()) == {1} and set(consumer_counts(b_url)) == set(ids)
    finally:
        w.stop()
        rt.close()


class PrivateRabbit:
    """The bus environment of a RabbitMQ node of the test's own (crm_shared.faults.RabbitNode), so
    stopping the broker disturbs nobody else's tests."""

    def __init__(self, node):
        import uuid
        self.kind, self.url, self.namespace, self.services = "rabbitmq", node.url, "t" + uuid.uuid4().hex[:10], set()

    def connect(self):
        from crm_shared.bus import connect
        return connect(self.url, self.namespace, lease_seconds=3)


@pytest.fixture
def private_rabbit():
    from crm_shared.faults import RabbitNode
    if not shutil.which("rabbitmq-server") and not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        if os.environ.get("CRM_REQUIRE_SERVERS") == "1":
            pytest.fail("rabbitmq-server is not installed (CRM_REQUIRE_SERVERS=1)")
        pytest.skip("rabbitmq-server is not installed")
    with RabbitNode() as node:
        yield node


@pytest.mark.slow
def test_writes_succeed_while_rabbitmq_is_down_and_events_arrive_once_after(private_rabbit, tmp_path):
    """RabbitMQ stopped (`rabbitmqctl stop_app`, on a private node): 200 writes through the HTTP API
    succeed; after `start_app` all 200 events arrive, each applied exactly once."""
    rabbit_env = PrivateRabbit(private_rabbit)
    d = make_demo_service("a", handles=())
    settings = demo_settings("a", f"sqlite:///{tmp_path}/a.db", rabbit_env.url, rabbit_env.namespace)
    app = create_service_app(d, settings, testing=True)
    rt = app.extensions["crm"]["runtime"]
    d.metadata.create_all(rt.engine)
    declare(rabbit_env, "b")
    b_url = f"sqlite:///{tmp_path}/b.db"
    relay = Proc("a", settings.database_url, rabbit_env, handles="").start()
    consumer = Proc("b", b_url, rabbit_env).start()
    client = app.test_client()
    h = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "u1", "Li Lei", ["sales_rep"])}
    try:
        private_rabbit.stop_app()
        try:
            for i in range(200):
                assert client.post("/v1/notes", json={"text": f"n{i}"}, headers=h).status_code == 201
            with rt.engine.connect() as c:
                assert c.execute(select(func.count()).select_from(rt.outbox)
                                 .where(rt.outbox.c.published_at.is_(None))).scalar_one() == 200
        finally:
            private_rabbit.start_app()
        wait_until(lambda: len(consumer_counts(b_url)) == 200, timeout=120, interval=0.5, message="200 events")
        time.sleep(1)
        assert set(consumer_counts(b_url).values()) == {1}
    finally:
        consumer.stop()
        relay.stop()
        rt.close()
