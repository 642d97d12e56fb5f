"""The unit of work's outbox: emitted rows are buffered and written in one INSERT when the unit of work
commits, in emit order; a rollback (or a rolled back savepoint) drops them; on PostgreSQL the
`outbox_notify` trigger (crm_shared.migrations) wakes the relay's LISTEN on commit only."""
import threading
import time

import psycopg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import event, select

from crm_shared.events import EventValidationError
from crm_shared.migrations import create_outbox_notify_trigger, drop_outbox_notify_trigger
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, make_demo_service, wait_until
from crm_shared.uow import UnitOfWork


def runtime(url, tmp_path, name="a"):
    rt = Runtime(make_demo_service(name, handles=()), demo_settings(name, url, f"sqlite:///{tmp_path}/bus.db", "t"))
    rt.definition.metadata.create_all(rt.engine)
    return rt


def with_trigger(rt):
    """What the services' migrations (leads 0007, sales 0007, service-desk 0006, notify 0006) add."""
    with rt.engine.begin() as conn:
        create_outbox_notify_trigger(Operations(MigrationContext.configure(conn)), rt.name)


@pytest.fixture
def rt(database_url, tmp_path):
    r = runtime(database_url, tmp_path)
    if r.is_postgres:
        with_trigger(r)
    yield r
    r.close()


class Statements:
    """The SQL the engine sends, as SQLAlchemy hands it to the driver (an executemany counts once)."""

    def __init__(self, engine):
        self.engine, self.sql = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        self.sql.append(" ".join(statement.split()))

    def outbox_inserts(self):
        return [s for s in self.sql if s.upper().startswith("INSERT INTO OUTBOX")]

    def notifies(self):
        return [s for s in self.sql if "PG_NOTIFY" in s.upper()]


def emit(uow, i):
    return uow.emit("lead.created", {"lead_id": f"L{i}", "status": "new", "name": f"n{i}"},
                    aggregate_type="lead", aggregate_id=i)


def outbox_rows(rt):
    ob = rt.outbox
    with rt.engine.connect() as c:
        return [tuple(r) for r in c.execute(select(ob.c.id, ob.c.event_id, ob.c.aggregate_id).order_by(ob.c.id))]


def test_n_emits_cost_one_insert_and_no_notify_statement(rt):
    with rt.uow() as uow:  # the first unit of work of a runtime also looks the trigger up, once
        emit(uow, 0)
        uow.commit()
    with Statements(rt.engine) as seen:
        with rt.uow() as uow:
            envs = [emit(uow, i) for i in range(1, 6)]
            assert seen.outbox_inserts() == [], "emit only buffers"
            uow.commit()
    assert len(seen.outbox_inserts()) == 1, seen.sql
    assert "RETURNING" not in seen.outbox_inserts()[0].upper()  # pipelinable in a consumer batch
    assert seen.notifies() == [], seen.sql
    rows = outbox_rows(rt)
    assert [r[1] for r in rows[1:]] == [e.id for e in envs]  # written in emit order: ids follow it
    assert [r[2] for r in rows] == [str(i) for i in range(6)]


def test_emit_validates_at_the_call_site_and_a_rollback_drops_the_buffer(rt):
    with rt.uow() as uow:
        with pytest.raises(EventValidationError):
            uow.emit("lead.created", {"lead_id": 7}, aggregate_type="lead", aggregate_id=7)
        emit(uow, 1)
        uow.rollback()
        assert uow.emitted == 0
        emit(uow, 2)
        uow.commit()
    with rt.uow() as uow:  # left without commit: nothing written
        emit(uow, 3)
    with pytest.raises(RuntimeError):
        with rt.uow() as uow:
            emit(uow, 4)
            raise RuntimeError("the request failed after emitting")
    assert [r[2] for r in outbox_rows(rt)] == ["2"]


def test_a_rolled_back_savepoint_drops_the_events_emitted_in_it(rt):
    with rt.uow() as uow:
        emit(uow, 1)
        with pytest.raises(RuntimeError):
            with uow.session.begin_nested():
                emit(uow, 2)
                raise RuntimeError("undo the savepoint")
        with uow.session.begin_nested():
            emit(uow, 3)
        emit(uow, 4)
        uow.commit()
    assert [r[2] for r in outbox_rows(rt)] == ["1", "3", "4"]


def test_a_session_committed_directly_still_writes_its_events(rt):
    with rt.uow() as uow:
        emit(uow, 1)
        uow.session.commit()
    assert [r[2] for r in outbox_rows(rt)] == ["1"]


def test_units_of_work_joined_to_one_connection_write_before_the_callers_commit(rt):
    with Statements(rt.engine) as seen:
        with rt.engine.connect() as conn:
            with conn.begin():
                for i in (1, 2):
                    with UnitOfWork(rt, conn) as uow:
                        emit(uow, i)
                        uow.commit()
            with conn.begin() as tx:
                with UnitOfWork(rt, conn) as uow:
                    emit(uow, 3)
                    uow.commit()
                tx.rollback()
    assert [r[2] for r in outbox_rows(rt)] == ["1", "2"]
    assert len(seen.outbox_inserts()) == 3


# -- PostgreSQL: the trigger wakes the LISTEN ---------------------------------------------------------

def listener(url, channel):
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    conn.execute(f'LISTEN "{channel}"')
    return conn


def notifications(conn, timeout):
    return [n.channel for n in conn.notifies(timeout=timeout)]


@pytest.mark.postgres
@pytest.mark.parametrize("trigger", [True, False], ids=["migrated", "create_all"])
def test_a_commit_in_one_connection_wakes_a_listen_on_another_and_a_rollback_does_not(pg_url, tmp_path, trigger):
    rt = runtime(pg_url, tmp_path)
    if trigger:
        with_trigger(rt)
    listen = listener(pg_url, rt.notify_channel)
    try:
        with Statements(rt.engine) as seen:
            with rt.uow() as uow:
                emit(uow, 1)
                emit(uow, 2)
                uow.rollback()
            with rt.uow() as uow:
                emit(uow, 3)  # left without commit
            assert notifications(listen, 0.5) == []
            with rt.uow() as uow:
                emit(uow, 4)
                emit(uow, 5)
                uow.commit()
            assert notifications(listen, 2.0) == [rt.notify_channel]  # one per transaction
        # without the trigger (a schema made by create_all) the unit of work notifies by itself
        assert len(seen.notifies()) == (0 if trigger else 1)
    finally:
        listen.close()
        rt.close()


@pytest.mark.postgres
def test_the_relays_listen_wakes_on_a_commit_of_another_process_and_not_on_a_rollback(pg_url, tmp_path):
    relay_rt, writer = runtime(pg_url, tmp_path), runtime(pg_url, tmp_path)
    with_trigger(relay_rt)
    stop = threading.Event()
    t = threading.Thread(target=Relay(relay_rt)._listen, args=(stop,), daemon=True)
    t.start()
    try:
        def listening():  # a new transaction each time: pg_stat_activity is a snapshot per transaction
            with relay_rt.engine.connect() as c:
                return c.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND query LIKE 'LISTEN %%'").scalar() == 1
        wait_until(listening, timeout=10, message="relay listening")
        relay_rt.outbox_wake.clear()
        with writer.uow() as uow:
            emit(uow, 1)
            uow.rollback()
        time.sleep(1.0)
        assert not relay_rt.outbox_wake.is_set()
        with writer.uow() as uow:
            emit(uow, 2)
            uow.commit()
        wait_until(relay_rt.outbox_wake.is_set, timeout=5, message="relay woken by NOTIFY")
    finally:
        stop.set()
        t.join(5)
        relay_rt.close()
        writer.close()


@pytest.mark.postgres
def test_the_trigger_migration_goes_down_and_up(pg_url, tmp_path):
    rt = runtime(pg_url, tmp_path)
    try:
        def triggers():
            with rt.engine.connect() as c:
                return c.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE tgrelid = 'outbox'::regclass "
                                         "AND NOT tgisinternal").scalars().all()
        with_trigger(rt)
        with_trigger(rt)  # again: replaces, does not fail
        assert triggers() == ["outbox_notify"]
        with rt.engine.begin() as conn:
            drop_outbox_notify_trigger(Operations(MigrationContext.configure(conn)))
        assert triggers() == []
    finally:
        rt.close()


# -- a consumer batch: the handlers' events in one INSERT, before the batch's COMMIT ------------------

def test_a_consumer_batch_writes_its_handlers_events_in_one_insert_before_its_commit(rt):
    from crm_shared.bus import Delivery, Outcome
    from crm_shared.events import Envelope
    from crm_shared.inbox import Dispatcher

    def handler(uow, env, payload):  # two events per delivery, in a shared session (pipelined on PG)
        for k in (0, 1):
            uow.emit("lead.created", {"lead_id": f"{payload['name']}-{k}", "status": "new", "name": "x"},
                     aggregate_type="lead", aggregate_id=f"{payload['name']}-{k}")

    envs = [Envelope(type="lead.created", payload={"lead_id": "1", "status": "new", "name": f"n{i}"}, producer="z")
            for i in range(4)]
    deliveries = [Delivery(e.id, e.type, e.to_json().encode(), 0) for e in envs]
    with rt.uow() as uow:  # the trigger lookup, once per runtime
        emit(uow, 0)
        uow.commit()
    order = []
    event.listen(rt.engine, "commit", lambda conn: order.append("COMMIT"))
    with Statements(rt.engine) as seen:
        event.listen(rt.engine, "before_cursor_execute",
                     lambda c, cur, st, *a: order.append("outbox") if st.startswith("INSERT INTO outbox") else None)
        decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch(deliveries)
    assert decisions == [(Outcome.ACK, None, 0)] * 4
    assert len(seen.outbox_inserts()) == 1 and seen.notifies() == []
    assert order == ["outbox", "COMMIT"]
    assert [r[2] for r in outbox_rows(rt)][1:] == [f"n{i}-{k}" for i in range(4) for k in (0, 1)]
    assert rt.outbox_wake.is_set()


def test_the_relay_sends_its_lock_and_claim_as_the_drivers_sql(rt):
    """The relay's statements are built once: on PostgreSQL its advisory lock and its claim go out as
    the driver's own SQL (`db.driver_execute`), on SQLite (no lock; its DateTime is converted) the
    claim through SQLAlchemy's compiled cache; every batch publishes its rows and marks them sent."""
    seen = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        head = statement.lstrip().upper()
        if "PG_TRY_ADVISORY_XACT_LOCK" in head:
            seen.append(("lock", context.compiled is None))
        elif head.startswith("UPDATE OUTBOX SET PUBLISHED_AT"):
            seen.append(("claim", context.compiled is None))

    relay = Relay(rt)
    event.listen(rt.engine, "before_cursor_execute", hook)
    try:
        published = []
        for n in (2, 3):
            with rt.uow() as uow:
                for i in range(n):
                    emit(uow, i)
                uow.commit()
            published.append(relay.run_once())
        published.append(relay.run_once())  # nothing left
    finally:
        event.remove(rt.engine, "before_cursor_execute", hook)
    assert published == [2, 3, 0]
    if rt.is_postgres:
        assert seen == [("lock", True), ("claim", True)] * 3, seen
    else:
        assert seen == [("claim", False)] * 2, seen  # (an empty SQLite poll asks without a lock first)
    ob = rt.outbox
    with rt.engine.connect() as c:
        rows = c.execute(select(ob.c.published_at, ob.c.attempts)).all()
    assert len(rows) == 5 and all(r.published_at is not None and r.attempts == 1 for r in rows)


def test_the_outbox_insert_is_compiled_once_and_writes_what_the_core_insert_wrote(rt):
    """Up to `_PREPARED_ROWS` rows, `write_outbox` sends a statement built once per row count: on
    PostgreSQL as the driver's own SQL (`db.driver_execute`, compiled once), on SQLite (whose
    DateTime SQLAlchemy converts) through SQLAlchemy's compiled cache, which serves it from the second
    commit on (a multi-row `insert().values()` has no cache key: it was compiled on every commit);
    above that, the Core statement. All store the same columns."""
    from crm_shared import uow as uow_mod
    hits = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            hits.append((statement.count("),") + 1, "driver" if context.compiled is None else context.cache_hit))

    event.listen(rt.engine, "before_cursor_execute", seen)
    written = []
    for n in (2, 2, 3, uow_mod._PREPARED_ROWS + 1, uow_mod._PREPARED_ROWS + 1):
        with rt.uow() as uow:
            written += [(e.id, e.to_json()) for e in (emit(uow, i) for i in range(n))]
            uow.commit()
    event.remove(rt.engine, "before_cursor_execute", seen)
    dialect = rt.engine.dialect
    if rt.is_postgres:  # every small write: the driver's SQL
        assert [h[1] for h in hits[:3]] == ["driver"] * 3, hits
    else:
        assert hits[1] == (2, dialect.CACHE_HIT), hits  # the second two-row write: no compilation
        assert hits[0][1] in (dialect.CACHE_MISS, dialect.CACHE_HIT) and hits[2][1] != dialect.NO_CACHE_KEY
    assert [h[1] for h in hits[3:]] == [dialect.NO_CACHE_KEY] * 2  # above the bound: the Core insert
    assert uow_mod._insert_for(rt, 2) is uow_mod._insert_for(rt, 2)
    assert uow_mod._insert_for(rt, uow_mod._PREPARED_ROWS + 1) is None
    ob = rt.outbox
    with rt.engine.connect() as c:
        rows = c.execute(select(ob).order_by(ob.c.id)).mappings().all()
    assert [(r["event_id"], r["envelope"]) for r in rows] == written
    assert {(r["event_type"], r["aggregate_type"]) for r in rows} == {("lead.created", "lead")}
    assert [r["aggregate_id"] for r in rows] == [str(i) for n in (2, 2, 3, uow_mod._PREPARED_ROWS + 1, uow_mod._PREPARED_ROWS + 1)
                                          for i in range(n)]
    small, large = rows[0]["created_at"], rows[-1]["created_at"]  # prepared vs Core: same type, same zone
    assert type(small) is type(large) and small.tzinfo == large.tzinfo and small <= large
    assert all(r["published_at"] is None and r["attempts"] == 0 for r in rows)
