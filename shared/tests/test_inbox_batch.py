"""The consumer's batches: several waiting deliveries handled in one transaction, with the same
guarantees as one at a time (each effect once, a failing event retried alone, acknowledgements
only after the commit)."""
import sys
import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from conftest import DEMO_DELAYS
from crm_shared.bus import Delivery, Outcome, OutgoingMessage
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_counts, demo_settings, make_demo_service, wait_until

PlainDispatcher = Dispatcher  # the class (the name `Dispatcher` may be swapped per test: `connection_mode`)


@pytest.fixture(params=["pooled", "own"])
def connection_mode(request, monkeypatch):
    """Every test of this module twice: with a Dispatcher that takes a pooled connection per batch,
    and with the Worker's, which keeps its own connection from one batch to the next."""
    made = []
    if request.param == "own":
        def own(*args, **kwargs):
            made.append(PlainDispatcher(*args, own_connection=True, **kwargs))
            return made[-1]
        monkeypatch.setattr(sys.modules[__name__], "Dispatcher", own)
    return made


@pytest.fixture
def consumer(database_url, tmp_path, connection_mode):
    d = make_demo_service("b")
    rt = Runtime(d, demo_settings("b", database_url, f"sqlite:///{tmp_path}/bus.db", "x"))
    d.metadata.create_all(rt.engine)
    commits = []
    event.listen(rt.engine, "commit", lambda conn: commits.append(1))
    rt.commits = commits
    yield rt
    for dispatcher in connection_mode:
        dispatcher.close()
    rt.close()


def delivery(name="x", env=None):
    env = env or Envelope(type="lead.created", payload={"lead_id": "1", "status": "new", "name": name}, producer="a",
                          correlation_id=f"corr-{name}")
    return Delivery(env.id, env.type, env.to_json().encode(), 0), env


def set_switch(rt, on: bool):
    switches = rt.definition.metadata.tables["switches"]
    with rt.engine.begin() as c:
        c.execute(switches.delete())
        c.execute(switches.insert().values(name="fail", on=int(on)))


def processed(rt) -> int:
    with rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(rt.inbox)).scalar_one()


def test_a_batch_is_one_transaction_and_each_event_applies_once(consumer):
    rt = consumer
    d = Dispatcher(rt, rt.definition.handlers)
    done, done_env = delivery("done-before")
    assert d(done) == (Outcome.ACK, None, 0)
    batch = [delivery(f"n{i}") for i in range(20)]
    twice = batch[3]  # the broker hands over a second copy of an event within the same batch
    deliveries = [b[0] for b in batch] + [twice[0], done]
    rt.commits.clear()
    decisions = d.handle_batch(deliveries)
    assert decisions == [(Outcome.ACK, None, 0)] * len(deliveries)
    assert len(rt.commits) == 1
    counts = demo_counts(rt.engine, rt.definition.metadata)
    assert counts == {**{env.id: 1 for _, env in batch}, done_env.id: 1}
    assert processed(rt) == 21


def test_a_failing_handler_in_a_batch_is_retried_alone_and_the_others_apply_once(consumer):
    rt = consumer
    set_switch(rt, True)
    d = Dispatcher(rt, rt.definition.handlers)
    batch = [delivery(f"n{i}") for i in range(4)] + [delivery("poison")] + [delivery(f"m{i}") for i in range(4)]
    decisions = d.handle_batch([b[0] for b in batch])
    assert [x[0] for x in decisions] == [Outcome.ACK] * 4 + [Outcome.RETRY] + [Outcome.ACK] * 4
    assert "told to fail" in decisions[4][1] and decisions[4][2] == DEMO_DELAYS[0]
    poison_id = batch[4][1].id
    counts = demo_counts(rt.engine, rt.definition.metadata)
    assert counts == {env.id: 1 for _, env in batch if env.id != poison_id}
    # the whole batch comes again (say the acknowledgements were lost), now the handler works
    set_switch(rt, False)
    decisions = d.handle_batch([b[0] for b in batch])
    assert decisions == [(Outcome.ACK, None, 0)] * len(batch)
    assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in batch}
    assert processed(rt) == len(batch)


def test_a_database_outage_requeues_the_whole_batch_without_effects(consumer):
    rt = consumer
    calls = []

    def handler(uow, env, payload):
        calls.append(env.id)
        if len(calls) == 2:
            raise OperationalError("INSERT …", {}, Exception("connection to server was lost"))
        rt.definition.handlers["lead.created"](uow, env, payload)

    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([delivery(f"n{i}")[0] for i in range(5)])
    assert [x[0] for x in decisions] == [Outcome.REQUEUE] * 5
    assert len(calls) == 2  # not tried one by one: waiting is the cure
    assert demo_counts(rt.engine, rt.definition.metadata) == {} and processed(rt) == 0


def test_events_emitted_in_a_batch_carry_their_own_cause_and_commit_with_it(consumer):
    rt = consumer

    def handler(uow, env, payload):
        uow.emit("lead.assigned", {"lead_id": payload["lead_id"], "owner_id": "u1", "reason": "auto"},
                 aggregate_type="lead", aggregate_id=payload["lead_id"])
        uow.commit()  # a handler that commits: inside a batch it only flushes
    batch = [delivery(f"n{i}") for i in range(6)]
    rt.outbox_wake.clear()
    assert Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch]) == [(Outcome.ACK, None, 0)] * 6
    assert rt.outbox_wake.is_set()
    with rt.engine.connect() as c:
        envs = [Envelope.from_json(e) for e in c.execute(select(rt.outbox.c.envelope).order_by(rt.outbox.c.id)).scalars()]
    assert [(e.causation_id, e.correlation_id) for e in envs] == [(env.id, env.correlation_id) for _, env in batch]


def test_invalid_and_unhandled_events_in_a_batch_do_not_hold_up_the_others(consumer):
    rt = consumer
    good = [delivery(f"n{i}") for i in range(3)]
    other = Envelope(type="lead.assigned", payload={"lead_id": "1", "owner_id": "u1", "reason": "auto"}, producer="a")
    deliveries = [good[0][0], Delivery("bad", "lead.created", b"{nope", 0), good[1][0],
                  Delivery(other.id, other.type, other.to_json().encode(), 0), good[2][0]]
    decisions = Dispatcher(rt, rt.definition.handlers).handle_batch(deliveries)
    assert [x[0] for x in decisions] == [Outcome.ACK, Outcome.DEAD, Outcome.ACK, Outcome.ACK, Outcome.ACK]
    assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in good}


def test_consume_batches_hands_over_what_is_waiting_and_settles_each_decision(bus_env):
    bus = bus_env.connect()
    bus_env.services.add("a")
    bus.declare_consumer("a", ["lead.created"], DEMO_DELAYS)
    sent = [OutgoingMessage(f"m{i:03d}", "lead.created", b"{}") for i in range(60)]
    assert bus.publish(sent) == set()
    batches, stop = [], threading.Event()

    def callback(ds):
        batches.append([d.message_id for d in ds])
        # m010 fails once: only it comes back (after its retry delay), the rest of its batch is acknowledged
        return [(Outcome.RETRY, "boom", DEMO_DELAYS[0]) if d.message_id == "m010" and d.attempts == 0
                else (Outcome.ACK, None, 0) for d in ds]

    t = threading.Thread(target=bus.consume_batches, args=("a", callback, stop), kwargs={"prefetch": 50, "max_batch": 16})
    t.start()
    try:
        wait_until(lambda: sum(map(len, batches)) == 61, message="every message, m010 twice")
        wait_until(lambda: bus.queue_depth("a") == 0, message="all settled")
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    flat = [m for b in batches for m in b]
    assert sorted(flat) == sorted([m.message_id for m in sent] + ["m010"])
    assert all(1 <= len(b) <= 16 for b in batches)
    assert max(len(b) for b in batches) > 1, "waiting messages were handed over together"
    assert [m for m in flat if m != "m010"] == [m.message_id for m in sent if m.message_id != "m010"]  # in order


def test_a_handler_that_rolls_back_cannot_make_a_batch_ack_what_it_undid(consumer):
    rt = consumer
    calls = []

    def handler(uow, env, payload):
        calls.append(env.id)
        rt.definition.handlers["lead.created"](uow, env, payload)
        if len(calls) == 3:  # the last of the batch undoes the shared transaction
            uow.session.rollback()

    batch = [delivery(f"n{i}") for i in range(3)]
    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch])
    assert [x[0] for x in decisions] == [Outcome.ACK] * 3
    # one by one after the batch failed: each event's effect and inbox row are there, once
    assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in batch}
    assert processed(rt) == 3


# -- one session for the batch's handlers; on PostgreSQL their INSERTs pipelined ---------------------

def marks_table(rt):
    """A table with a key the handler provides: its INSERT has no RETURNING, so it can be pipelined."""
    from sqlalchemy import Column, Integer, MetaData, String, Table
    marks = Table("marks", MetaData(), Column("key", String(64), primary_key=True),
                  Column("n", Integer, nullable=False))
    marks.create(rt.engine)
    return marks


def test_a_batch_shares_one_session_and_later_handlers_read_earlier_writes(consumer):
    rt = consumer
    marks = marks_table(rt)
    sessions, seen = [], []

    def handler(uow, env, payload):
        from sqlalchemy import update
        sessions.append(uow.session)
        s = uow.session
        # every handler writes its own row (deferred on PostgreSQL) and bumps a shared counter row
        s.execute(marks.insert().values(key=env.id, n=1))
        if payload["name"] == "n0":
            s.execute(marks.insert().values(key="total", n=1))
        else:
            res = s.execute(update(marks).where(marks.c.key == "total").values(n=marks.c.n + 1))
            assert res.rowcount == 1  # the first handler's row is there, and the rowcount is right
        seen.append(s.execute(select(func.count()).select_from(marks)).scalar_one())

    batch = [delivery(f"n{i}") for i in range(8)]
    rt.commits.clear()
    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch])
    assert decisions == [(Outcome.ACK, None, 0)] * 8
    assert len(rt.commits) == 1, "handled in one transaction, not again one by one"
    assert len({id(s) for s in sessions}) == 1 and len(sessions) == 8
    assert seen == [2] + [i + 2 for i in range(1, 8)]  # each read sees every earlier write
    with rt.engine.connect() as c:
        assert c.execute(select(marks.c.n).where(marks.c.key == "total")).scalar_one() == 8
        assert c.execute(select(func.count()).select_from(marks)).scalar_one() == 9


def test_a_deferred_insert_that_fails_fails_only_its_own_event(consumer):
    """On PostgreSQL the bad INSERT's error comes back later than the statement (pipelined): the
    batch must still fail as a whole and the event alone be retried, none other lost or doubled."""
    rt = consumer
    marks = marks_table(rt)
    with rt.engine.begin() as c:
        c.execute(marks.insert().values(key="taken", n=0))

    def handler(uow, env, payload):
        key = "taken" if payload["name"] == "clash" else env.id
        uow.session.execute(marks.insert().values(key=key, n=1))
        rt.definition.handlers["lead.created"](uow, env, payload)  # and the demo effect row

    only_the_clash_is_retried(rt, marks, handler)


def only_the_clash_is_retried(rt, marks, handler):
    """A batch of seven where the handler fails for the event named "clash" only: that event is retried
    alone with its IntegrityError, the six others apply once (their `marks` rows next to "taken")."""
    batch = [delivery(f"n{i}") for i in range(3)] + [delivery("clash")] + [delivery(f"m{i}") for i in range(3)]
    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch])
    assert [x[0] for x in decisions] == [Outcome.ACK] * 3 + [Outcome.RETRY] + [Outcome.ACK] * 3
    assert "IntegrityError" in decisions[3][1]
    clash = batch[3][1].id
    assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in batch if env.id != clash}
    assert processed(rt) == 6
    with rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(marks)).scalar_one() == 7


def test_a_handler_that_swallows_a_database_error_cannot_make_a_batch_commit_nothing(consumer):
    """A handler catching the error of its INSERT leaves the PostgreSQL transaction aborted (its
    COMMIT would silently roll back): the batch must not acknowledge on it."""
    rt = consumer
    marks = marks_table(rt)
    with rt.engine.begin() as c:
        c.execute(marks.insert().values(key="taken", n=0))
    from sqlalchemy.exc import DBAPIError

    def handler(uow, env, payload):
        rt.definition.handlers["lead.created"](uow, env, payload)
        if payload["name"] == "last":
            try:
                uow.session.execute(marks.insert().values(key="taken", n=1))
                uow.session.execute(select(marks.c.n).where(marks.c.key == "taken")).all()
            except DBAPIError:
                pass  # swallowed

    batch = [delivery(f"n{i}") for i in range(3)] + [delivery("last")]
    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch])
    acked = {env.id for (_, env), dec in zip(batch, decisions) if dec[0] is Outcome.ACK}
    counts = demo_counts(rt.engine, rt.definition.metadata)
    # every acknowledged event committed its effect exactly once
    assert {i: counts.get(i) for i in acked} == {i: 1 for i in acked}
    assert {env.id for _, env in batch[:3]} <= acked
    if rt.is_postgres:  # aborted: retried (SQLite's transaction survives a failed statement)
        print("DECISION", decisions[3])
        assert decisions[3][0] is Outcome.RETRY and "aborted" in decisions[3][1]


def test_an_error_that_comes_back_as_the_pipeline_ends_is_classified_like_any_other(consumer):
    """The last deferred INSERTs' replies come back when the pipeline ends, outside any statement:
    their error must still be told apart as usual, here a statement timeout (the database is
    overloaded: requeue the batch, no retry used, nothing applied, not tried one by one)."""
    rt = consumer
    if not rt.is_postgres:
        pytest.skip("pipelining is PostgreSQL's")
    from sqlalchemy import text
    marks = marks_table(rt)
    calls = []

    def handler(uow, env, payload):
        calls.append(env.id)
        if len(calls) == 4:  # the last INSERT of the batch is slow, and deferred
            uow.session.execute(text("SET LOCAL statement_timeout = '100ms'"))
            uow.session.execute(text("INSERT INTO marks (key, n) VALUES (:k, (SELECT 1 FROM pg_sleep(1)))"),
                                {"k": env.id})
        else:
            uow.session.execute(marks.insert().values(key=env.id, n=1))

    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([delivery(f"n{i}")[0] for i in range(4)])
    assert [x[0] for x in decisions] == [Outcome.REQUEUE] * 4, decisions
    assert "statement timeout" in decisions[0][1]
    assert len(calls) == 4  # not tried again one by one
    with rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(marks)).scalar_one() == 0
    assert processed(rt) == 0


def test_a_batch_counts_every_event_in_the_metrics_once(consumer):
    """Counters are added up per batch (one increment per type and outcome): each event is still
    counted once, under its own outcome, and each handled one has its handler time observed."""
    from prometheus_client import REGISTRY as PROM

    rt = consumer

    def sample(name, **labels):
        return PROM.get_sample_value(name, {"service": rt.name, **labels}) or 0.0

    def snapshot():
        return {o: sample("crm_events_consumed_total", type="lead.created", outcome=o)
                for o in ("ok", "duplicate", "dead")} | {
            "observed": sample("crm_event_handler_duration_seconds_count", type="lead.created"),
            "invalid": sample("crm_events_consumed_total", type="garbage", outcome="invalid")}

    d = Dispatcher(rt, rt.definition.handlers)
    done, _ = delivery("done-before")
    d(done)
    before = snapshot()
    batch = [delivery(f"n{i}")[0] for i in range(7)]
    garbage = Delivery("g", "garbage", b"not json", 0)
    decisions = d.handle_batch(batch + [batch[2], done, garbage])
    assert [x[0] for x in decisions] == [Outcome.ACK] * 9 + [Outcome.DEAD]
    after = snapshot()
    assert {k: after[k] - before[k] for k in after} == {"ok": 7, "duplicate": 2, "dead": 0, "observed": 7,
                                                         "invalid": 1}
    d(delivery("alone")[0])  # one event alone (pooled: the one-transaction path; kept connection: the batch path)
    assert sample("crm_events_consumed_total", type="lead.created", outcome="ok") - after["ok"] == 1


# -- the Worker's Dispatcher keeps its connection between batches -------------------------------------

def test_the_kept_connection_serves_every_batch_and_a_lost_one_is_replaced_without_losing_the_batch(consumer):
    """own_connection: no pool checkout (with its pre-ping) per batch; when the database drops the
    connection between two batches, the next batch is handled on a new one: acknowledged, each
    effect once, no retry used. If the new one fails too, the batch is requeued (database down)."""
    rt = consumer
    if not rt.is_postgres:
        pytest.skip("the kept connection is PostgreSQL's")
    from sqlalchemy import text
    checkouts = []
    event.listen(rt.engine, "checkout", lambda *_: checkouts.append(1))
    d = PlainDispatcher(rt, rt.definition.handlers, own_connection=True)
    try:
        first = [delivery(f"a{i}") for i in range(3)]
        assert d.handle_batch([b[0] for b in first]) == [(Outcome.ACK, None, 0)] * 3
        pid = d._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        d._conn.rollback()
        checkouts.clear()
        second = [delivery(f"b{i}") for i in range(3)] + [delivery("alone")]
        assert d.handle_batch([b[0] for b in second[:3]]) == [(Outcome.ACK, None, 0)] * 3
        assert d.handle_batch([second[3][0]]) == [(Outcome.ACK, None, 0)]
        assert checkouts == []  # the same connection, no checkout and no pre-ping
        with rt.engine.connect() as c:  # the database drops it (restart, network cut, admin)
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
            c.commit()
        checkouts.clear()
        third = [delivery(f"c{i}") for i in range(3)]
        assert d.handle_batch([b[0] for b in third] + [first[0][0]]) == [(Outcome.ACK, None, 0)] * 4
        assert checkouts == [1]  # replaced once
        assert d._conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        d._conn.rollback()
        assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in first + second + third}

        # lost again, and no new connection can be had: the batch goes back to the queue untouched
        pid = d._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        d._conn.rollback()
        with rt.engine.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            c.commit()

        def refuse(*_):
            raise OperationalError("connect", {}, Exception("connection refused"))
        event.listen(rt.engine, "checkout", refuse)
        fourth = [delivery(f"d{i}") for i in range(3)]
        decisions = d.handle_batch([b[0] for b in fourth])
        assert [x[0] for x in decisions] == [Outcome.REQUEUE] * 3, decisions
        event.remove(rt.engine, "checkout", refuse)
        assert d.handle_batch([b[0] for b in fourth]) == [(Outcome.ACK, None, 0)] * 3
        assert demo_counts(rt.engine, rt.definition.metadata) == {
            env.id: 1 for _, env in first + second + third + fourth}
    finally:
        d.close()


def test_a_batch_whose_commit_went_through_on_a_lost_connection_is_not_applied_twice(consumer, monkeypatch):
    """The connection breaks after the batch's COMMIT reached the database but before the reply:
    the batch is handled again on a new connection, where the inbox rows make every event a
    duplicate, so it is acknowledged with each effect once."""
    rt = consumer
    if not rt.is_postgres:
        pytest.skip("the kept connection is PostgreSQL's")
    from sqlalchemy import text
    d = PlainDispatcher(rt, rt.definition.handlers, own_connection=True)
    try:
        warm, warm_env = delivery("warm")
        d.handle_batch([warm])
        pid = d._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        d._conn.rollback()
        real = d._in_transaction
        calls = []

        def commit_then_lose(conn, work):
            calls.append(1)
            out = real(conn, work)
            if len(calls) == 1:  # committed; now the connection dies before we hear of it
                with rt.engine.connect() as c:
                    c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                    c.commit()
                conn.execute(text("SELECT 1"))
            return out

        monkeypatch.setattr(d, "_in_transaction", commit_then_lose)
        batch = [delivery(f"n{i}") for i in range(4)]
        assert d.handle_batch([b[0] for b in batch]) == [(Outcome.ACK, None, 0)] * 4
        assert len(calls) == 2
        assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in [(warm, warm_env)] + batch}
    finally:
        d.close()


def test_no_connection_goes_back_to_the_pool_in_autocommit_mode(consumer):
    """The batch's connection runs in autocommit mode (its BEGIN is sent with the first statement):
    once back in the pool it must be transactional again, or a later user's transaction would not
    be one."""
    rt = consumer
    if not rt.is_postgres:
        pytest.skip("autocommit batches are PostgreSQL's")
    for own in (False, True):
        d = PlainDispatcher(rt, rt.definition.handlers, own_connection=own)
        assert d.handle_batch([delivery(f"{own}{i}")[0] for i in range(3)]) == [(Outcome.ACK, None, 0)] * 3
        assert d.handle_batch([delivery(f"{own}-alone")[0]]) == [(Outcome.ACK, None, 0)]
        d.close()
    held = [rt.engine.connect() for _ in range(rt.engine.pool.checkedin())]  # every pooled connection
    try:
        assert held and not any(c.connection.driver_connection.autocommit for c in held)
        marks = marks_table(rt)
        for c in held:  # and a rolled back write leaves nothing
            c.execute(marks.insert().values(key=f"k{id(c)}", n=1))
            c.rollback()
    finally:
        for c in held:
            c.close()
    with rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(marks)).scalar_one() == 0


def test_a_handler_savepoint_that_rolls_back_keeps_the_rest_of_the_batch(consumer, monkeypatch):
    """Handlers use savepoints (`session.begin_nested()`, e.g. a unique insert that may lose a race):
    rolled back to the savepoint, the handler's other writes and the rest of the batch commit, once,
    in the batch's one transaction (on PostgreSQL: pipelined, inside the BEGIN the batch sends
    itself; the statements inside a savepoint run synchronously, so the error is raised where the
    handler catches it and the ROLLBACK TO SAVEPOINT runs): not redone one event at a time."""
    from sqlalchemy.exc import IntegrityError
    rt = consumer
    marks = marks_table(rt)
    with rt.engine.begin() as c:
        c.execute(marks.insert().values(key="taken", n=0))
    one_by_one = []
    real_one = PlainDispatcher._one
    monkeypatch.setattr(PlainDispatcher, "_one", lambda self, *a: one_by_one.append(a[1].id) or real_one(self, *a))
    caught = []

    def handler(uow, env, payload):
        uow.session.execute(marks.insert().values(key=env.id, n=2))  # deferred on PostgreSQL
        if payload["name"].startswith("race"):
            try:
                with uow.session.begin_nested():
                    uow.session.execute(marks.insert().values(key="taken", n=1))
                    if payload["name"] == "race-read":  # a read after the failing write changes nothing
                        uow.session.execute(select(marks.c.n).where(marks.c.key == "taken")).all()
            except IntegrityError:
                caught.append(env.id)  # lost the race: the savepoint is rolled back, the transaction goes on
            with uow.session.begin_nested():  # and a savepoint that works, released
                uow.session.execute(marks.insert().values(key=f"{env.id}-ok", n=3))
        rt.definition.handlers["lead.created"](uow, env, payload)

    names = ["n0", "race", "n1", "race-read", "race", "n2", "race-read", "n3"]
    batch = [delivery(n) for n in names]
    rt.commits.clear()
    assert Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch]) == [(Outcome.ACK, None, 0)] * 8
    racers = [env.id for (_, env), n in zip(batch, names) if n.startswith("race")]
    assert caught == racers
    assert one_by_one == [] and len(rt.commits) == 1, "one transaction, not redone one event at a time"
    assert demo_counts(rt.engine, rt.definition.metadata) == {env.id: 1 for _, env in batch}
    with rt.engine.connect() as c:
        assert dict(c.execute(select(marks.c.key, marks.c.n)).all()) == {
            "taken": 0, **{env.id: 2 for _, env in batch}, **{f"{i}-ok": 3 for i in racers}}
    assert processed(rt) == 8


def test_an_error_a_handler_does_not_catch_in_its_savepoint_fails_only_its_own_event(consumer):
    rt = consumer
    marks = marks_table(rt)
    with rt.engine.begin() as c:
        c.execute(marks.insert().values(key="taken", n=0))

    def handler(uow, env, payload):
        uow.session.execute(marks.insert().values(key=env.id, n=1))
        if payload["name"] == "clash":
            with uow.session.begin_nested():  # no except: the error leaves the handler
                uow.session.execute(marks.insert().values(key="taken", n=1))
        rt.definition.handlers["lead.created"](uow, env, payload)

    only_the_clash_is_retried(rt, marks, handler)


def test_an_earlier_events_error_caught_by_a_later_handlers_savepoint_cannot_make_the_batch_commit_nothing(consumer):
    """On PostgreSQL an earlier handler's deferred INSERT fails; its error comes back at the next
    synced statement, here a later handler's SAVEPOINT inside its `try … except IntegrityError`. The
    later handler takes it for its own lost race and goes on: the transaction is aborted all the same
    (the error is not inside the savepoint, which was never made), so the batch must not commit or
    acknowledge on it: handled one by one, only the failing event retried."""
    from sqlalchemy.exc import IntegrityError
    rt = consumer
    marks = marks_table(rt)
    with rt.engine.begin() as c:
        c.execute(marks.insert().values(key="taken", n=0))
    swallowed = []

    def handler(uow, env, payload):
        if payload["name"] == "careful":  # the last of the batch: a savepoint first, then only deferred writes
            try:
                with uow.session.begin_nested():
                    uow.session.execute(marks.insert().values(key=f"{env.id}-sp", n=2))
            except IntegrityError:
                swallowed.append(env.id)
            uow.session.execute(marks.insert().values(key=env.id, n=1))
            return
        rt.definition.handlers["lead.created"](uow, env, payload)
        key = "taken" if payload["name"] == "clash" else env.id
        uow.session.execute(marks.insert().values(key=key, n=1))  # "clash": fails, deferred on PostgreSQL

    batch = [delivery("n0"), delivery("n1"), delivery("clash"), delivery("careful")]
    decisions = Dispatcher(rt, {"lead.created": handler}).handle_batch([b[0] for b in batch])
    assert [x[0] for x in decisions] == [Outcome.ACK, Outcome.ACK, Outcome.RETRY, Outcome.ACK], decisions
    clash, careful = batch[2][1].id, batch[3][1].id
    assert demo_counts(rt.engine, rt.definition.metadata) == {batch[0][1].id: 1, batch[1][1].id: 1}
    assert processed(rt) == 3
    with rt.engine.connect() as c:
        keys = sorted(c.execute(select(marks.c.key)).scalars())
    assert keys == sorted(["taken", careful, f"{careful}-sp", batch[0][1].id, batch[1][1].id])
    if rt.is_postgres:
        assert swallowed == [careful]  # in the batch; then alone, its savepoint worked


def test_a_rollback_to_savepoint_runs_after_an_error_read_before_the_pipeline_synced(pg_url):
    """psycopg reads replies while it sends: an error can be raised by a statement's execute before
    that statement's sync went out, leaving the pipeline aborted (the server skips everything up to
    the next sync). The pipeline is synced as the error is raised, so the ROLLBACK TO SAVEPOINT that
    follows runs and the transaction goes on."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from crm_shared.inbox import failed_transaction, pipelined
    engine = create_engine(pg_url)
    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE marks (key text PRIMARY KEY)"))
            c.execute(text("INSERT INTO marks VALUES ('taken')"))
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            with pipelined(conn, begin=True) as commit:
                conn.exec_driver_sql("INSERT INTO marks VALUES ('before')")
                # a savepoint SQLAlchemy does not know of: its INSERT is deferred like any other
                conn.exec_driver_sql("SAVEPOINT manual")
                conn.exec_driver_sql("INSERT INTO marks VALUES ('taken')")
                time.sleep(0.3)  # its error is in the socket before the next statement is sent
                with pytest.raises(DBAPIError, match="UniqueViolation|duplicate key"):
                    conn.exec_driver_sql("SELECT count(*) FROM marks").all()
                assert failed_transaction(conn)  # the error's sync is in: the transaction shows as aborted
                conn.exec_driver_sql("ROLLBACK TO SAVEPOINT manual")
                conn.exec_driver_sql("INSERT INTO marks VALUES ('after')")
                assert not failed_transaction(conn)
                commit()
        with engine.connect() as c:
            assert set(c.execute(text("SELECT key FROM marks")).scalars()) == {"taken", "before", "after"}
    finally:
        engine.dispose()
