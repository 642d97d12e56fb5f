"""Outbox/inbox retention (batched deletes by age) and re-publishing kept outbox events to one
consumer's queue only, on SQLite/PostgreSQL and the embedded bus/RabbitMQ."""
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from crm_shared import retention
from crm_shared.cli import main
from crm_shared.config import Settings
from crm_shared.inbox import Dispatcher
from crm_shared.migrations import upgrade
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.scheduler import Scheduler
from crm_shared.service import load as load_service
from crm_shared.testing import demo_counts, demo_settings, make_demo_service, wait_until
from crm_shared.worker import Worker


def emit(rt, n):
    notes = rt.definition.metadata.tables["notes"]
    envs = []
    for i in range(n):
        with rt.uow() as uow:
            nid = uow.session.execute(notes.insert().values(text=f"n{i}", author_id="u1", priority=0,
                                                            created_at=rt.clock.now())).inserted_primary_key[0]
            envs.append(uow.emit("lead.created", {"lead_id": str(nid), "status": "new", "name": f"n{i}"},
                                 aggregate_type="note", aggregate_id=nid))
            uow.commit()
    return envs


def rows(rt, table, where=None):
    t = rt.definition.metadata.tables[table]
    q = select(func.count()).select_from(t)
    if where is not None:
        q = q.where(where(t))
    with rt.engine.connect() as c:
        return c.execute(q).scalar_one()


def age(rt, table, column, days, where):
    t = rt.definition.metadata.tables[table]
    with rt.engine.begin() as c:
        c.execute(update(t).where(where(t)).values({column: rt.clock.now() - timedelta(days=days)}))


# ---- retention -----------------------------------------------------------------------------------

@pytest.fixture
def rt(database_url, tmp_path):
    r = Runtime(make_demo_service("a"), demo_settings("a", database_url, f"sqlite:///{tmp_path}/bus.db", "r"))
    r.definition.metadata.create_all(r.engine)
    yield r
    r.close()


def test_outbox_retention_deletes_old_published_rows_in_batches_and_keeps_pending_ones(rt):
    envs = emit(rt, 7)
    ids = [e.id for e in envs]
    Relay(rt).drain()   # published (the bus has no consumer: unroutable, still published)
    # 0-3 published 8 days ago, 4 published 6 days ago, 5 pending since 20 days, 6 published now
    age(rt, "outbox", "published_at", 8, lambda t: t.c.event_id.in_(ids[:4]))
    age(rt, "outbox", "published_at", 6, lambda t: t.c.event_id == ids[4])
    with rt.engine.begin() as c:
        c.execute(update(rt.outbox).where(rt.outbox.c.event_id == ids[5]).values(
            published_at=None, created_at=rt.clock.now() - timedelta(days=20)))
    before = retention.DELETED.labels("a", "outbox")._value.get()
    assert retention.purge_outbox(rt, batch=3) == 4      # two batches: 3 + 1
    with rt.engine.connect() as c:
        left = c.execute(select(rt.outbox.c.event_id).order_by(rt.outbox.c.id)).scalars().all()
    assert left == ids[4:]
    assert retention.DELETED.labels("a", "outbox")._value.get() - before == 4
    assert retention.purge_outbox(rt) == 0               # nothing more is old enough
    assert retention.purge_outbox(rt, days=0) == 0       # 0 keeps everything
    assert retention.purge_outbox(rt, days=5) == 1 and rows(rt, "outbox") == 2


def test_inbox_retention_deletes_old_processed_ids(rt):
    with rt.engine.begin() as c:
        now = rt.clock.now()
        c.execute(rt.inbox.insert(), [{"event_id": f"e{i}", "event_type": "lead.created",
                                       "processed_at": now - timedelta(days=d)} for i, d in enumerate([40, 31, 29, 0])])
    assert retention.purge_inbox(rt, batch=1) == 2
    with rt.engine.connect() as c:
        assert sorted(c.execute(select(rt.inbox.c.event_id)).scalars()) == ["e2", "e3"]


def test_the_worker_schedules_retention_for_every_service(rt):
    w = Worker(rt, consume=False, relay=False)
    assert retention.JOB in w.jobs and w.parts["schedule"]
    emit(rt, 1)
    Relay(rt).drain()
    age(rt, "outbox", "published_at", 30, lambda t: t.c.id > 0)
    assert Scheduler(rt, w.jobs).run_job(retention.JOB)    # on PostgreSQL under the job's advisory lock
    assert rows(rt, "outbox") == 0


def test_inbox_must_outlive_the_outbox():
    base = dict(service="a", database_url="sqlite:///x.db")
    Settings(**base).check()                                        # 7 and 30 days
    Settings(**base, inbox_retention_days=0).check()                # inbox kept for ever
    for outbox, inbox in ((7, 7), (30, 7), (0, 30)):
        with pytest.raises(RuntimeError, match="INBOX_RETENTION_DAYS"):
            Settings(**base, outbox_retention_days=outbox, inbox_retention_days=inbox).check()
    s = Settings.from_env("a", env={"OUTBOX_RETENTION_DAYS": "3", "INBOX_RETENTION_DAYS": "14"})
    assert (s.outbox_retention_days, s.inbox_retention_days) == (3, 14)


# ---- republish to one consumer -------------------------------------------------------------------

def consume_all(rt, stop_when):
    stop = threading.Event()
    d = Dispatcher(rt, rt.definition.handlers)
    t = threading.Thread(target=rt.bus.consume, args=(rt.name, d, stop), kwargs={"prefetch": 20})
    t.start()
    try:
        wait_until(stop_when, timeout=20, message=f"{rt.name} to drain its queue")
    finally:
        stop.set()
        t.join(20)


def test_republish_reaches_one_consumer_only_and_its_inbox_skips_what_it_applied(bus_env, tmp_path):
    from crm_shared.republish import republish
    mk = lambda name, handles: Runtime(make_demo_service(name, handles=handles),  # noqa: E731
                                       demo_settings(name, f"sqlite:///{tmp_path}/{name}.db", bus_env.url,
                                                     bus_env.namespace))
    a, b, c = mk("a", ()), mk("b", ("lead.created",)), mk("c", ("lead.created",))
    for r in (a, b, c):
        r.definition.metadata.create_all(r.engine)
    bus_env.services |= {"a", "b", "c"}
    for r in (b, c):
        r.bus.declare_consumer(r.name, ["lead.created"], r.settings.retry_delays_ms)
    envs = emit(a, 6)
    Relay(a).drain()
    assert c.bus.queue_depth("c") == 6
    consume_all(b, lambda: b.bus.queue_depth("b") == 0 and sum(demo_counts(b.engine, b.definition.metadata).values()) == 6)

    # everything again to b only: all duplicates, nothing applied twice, c untouched
    assert republish(a, a.bus, "b", ["lead.created"]) == 6
    wait_until(lambda: b.bus.queue_depth("b") == 6, timeout=10, message="copies in b's queue")
    assert c.bus.queue_depth("c") == 6
    consume_all(b, lambda: b.bus.queue_depth("b") == 0)
    assert set(demo_counts(b.engine, b.definition.metadata).values()) == {1}

    # b "restored from a backup" that lacks the last two events: re-publish from a little before
    applied, inbox = b.definition.metadata.tables["applied"], b.inbox
    lost = [e.id for e in envs[4:]]
    with b.engine.begin() as conn:
        conn.execute(applied.delete().where(applied.c.event_id.in_(lost)))
        conn.execute(inbox.delete().where(inbox.c.event_id.in_(lost)))
    with a.engine.connect() as conn:
        since = conn.execute(select(a.outbox.c.created_at).where(a.outbox.c.event_id == envs[3].id)).scalar_one()
    assert republish(a, a.bus, "b", ["lead.created"], since=since, dry_run=True) == 3
    assert republish(a, a.bus, "b", ["lead.created"], since=since, batch=2) == 3
    consume_all(b, lambda: b.bus.queue_depth("b") == 0 and len(demo_counts(b.engine, b.definition.metadata)) == 6)
    counts = demo_counts(b.engine, b.definition.metadata)
    assert set(counts) == {e.id for e in envs} and set(counts.values()) == {1}
    assert c.bus.queue_depth("c") == 6
    for r in (a, b, c):
        r.close()


def test_republish_command_with_a_real_producer(tmp_path):
    """`crm outbox republish leads --to notify`: leads' kept events of the types notify consumes go
    to notify's queue, not to sales' (which consumes lead.converted)."""
    from crm_shared.bus import connect
    db = f"sqlite:///{tmp_path}/leads.db"
    env = {"DATABASE_URL": db, "BUS_URL": f"sqlite:///{tmp_path}/bus.db", "BUS_NAMESPACE": "rp"}
    definition = load_service("leads")
    upgrade(definition, db)
    leads = Runtime(definition, Settings.from_env("leads", env))
    with leads.uow() as uow:
        for i in range(2):
            uow.emit("lead.created", {"lead_id": str(i), "status": "new", "name": "x"}, aggregate_type="lead",
                     aggregate_id=i)
        uow.commit()
    bus = connect(env["BUS_URL"], "rp")
    bus.declare_consumer("notify", ["lead.created", "lead.assigned"])
    bus.declare_consumer("sales", ["lead.converted", "lead.created"])
    runner = CliRunner()
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "notify"], env=env)
    assert r.exit_code == 0 and "sent 0 event(s)" in r.output, r.output   # nothing published yet
    Relay(leads).drain()
    before = bus.queue_depth("sales")
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "notify", "--type", "lead.created"], env=env)
    assert r.exit_code == 0 and "sent 2 event(s)" in r.output, r.output
    assert bus.queue_depth("notify") == 4 and bus.queue_depth("sales") == before
    future = (leads.clock.now() + timedelta(hours=1)).isoformat()
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "notify", "--since", future], env=env)
    assert "sent 0 event(s)" in r.output
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "notify", "--type", "customer.created"], env=env)
    assert r.exit_code != 0 and "customer.created" in r.output
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "notify", "--since", "yesterday"], env=env)
    assert r.exit_code != 0 and "ISO 8601" in r.output
    r = runner.invoke(main, ["outbox", "republish", "leads", "--to", "nobody"], env=env)
    assert r.exit_code != 0
    leads.close()
