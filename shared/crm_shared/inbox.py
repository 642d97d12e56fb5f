"""Idempotent consumption: a handler's effects and the processed event id commit in one
transaction, so a redelivered event has no second effect.

Several deliveries that are already waiting are handled in one transaction (`handle_batch`): the
inbox rows of the batch in one statement, the handlers in one session joined to that transaction
(on PostgreSQL pipelined: their INSERTs go out without waiting for each reply, see `pipelined`),
one commit; the bus acknowledges them only after it. If any handler of the batch fails, the whole
transaction is rolled back and the batch is handled again one event per transaction, so a failing
event is retried or dead-lettered alone and no other event of the batch is lost or applied twice.

On PostgreSQL a batch costs two round trips: BEGIN with the inbox statement (whose result says which
events are new), then the handlers' pipelined writes with the COMMIT. A consumer thread (the
Worker's: `own_connection=True`) also keeps its connection from one batch to the next instead of
checking one out of the pool, with its pre-ping, for each; a connection lost since the last batch is
replaced and the batch run again on the new one, once, as the pool's pre-ping would have done."""
from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
import time
import traceback
import weakref

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from . import context, metrics, tracing
from .bus import Delivery, Outcome
from .events import REGISTRY, Envelope, EventValidationError, UnknownEventType
from .events.envelope import EnvelopeError
from .uow import UnitOfWork, joined_session, write_outbox

log = logging.getLogger(__name__)
_ACK = (Outcome.ACK, None, 0)


class Dispatcher:
    """Turns deliveries into decisions: acknowledge, retry later, or dead-letter."""

    def __init__(self, runtime, handlers: dict, own_connection: bool = False):
        self.rt = runtime
        self.handlers = tracing.traced_handlers(runtime, handlers)  # unchanged unless tracing is on
        self.delays = runtime.settings.retry_delays_ms or (1000,)
        # prometheus children bound once per (event type, label), not looked up per event
        self._consumed: dict[tuple[str, str], object] = {}
        self._latency: dict[str, object] = {}
        dialect = runtime.engine.dialect.name
        self._insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(runtime.inbox)
        self._insert_many = self._insert.on_conflict_do_nothing().returning(runtime.inbox.c.event_id)
        inbox = runtime.inbox
        self._unnest = None
        if dialect == "postgresql":
            rows = func.unnest(bindparam("ids", type_=postgresql.ARRAY(inbox.c.event_id.type)),
                               bindparam("types", type_=postgresql.ARRAY(inbox.c.event_type.type))
                               ).table_valued("event_id", "event_type").render_derived(name="batch")
            self._unnest = (postgresql.insert(inbox).from_select(
                ["event_id", "event_type", "processed_at"],
                select(rows.c.event_id, rows.c.event_type, bindparam("at", type_=inbox.c.processed_at.type)))
            .on_conflict_do_nothing().returning(inbox.c.event_id))
        # the consumer thread's own connection (PostgreSQL, own_connection): taken by the first thread
        # that handles a batch, used by that thread only (any other takes one from the pool per batch)
        self._own = own_connection and dialect == "postgresql"
        self._conn = None
        self._owner: int | None = None

    def close(self) -> None:
        """Give the kept connection back (the consumer stops); the next batch takes a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _count(self, event_type: str, label: str, n: int = 1) -> None:
        child = self._consumed.get((event_type, label))
        if child is None:
            child = self._consumed[(event_type, label)] = metrics.EVENTS_CONSUMED.labels(self.rt.name, event_type, label)
        child.inc(n)

    def _observe(self, event_type: str, seconds: float) -> None:
        child = self._latency.get(event_type)
        if child is None:
            child = self._latency[event_type] = metrics.HANDLER_LATENCY.labels(self.rt.name, event_type)
        child.observe(seconds)

    def mark_processed(self, uow, env: Envelope) -> bool:
        """Record the event as processed in this transaction; False if it already was."""
        stmt = self._insert.values(event_id=env.id, event_type=env.type,
                                   processed_at=self.rt.clock.now()).on_conflict_do_nothing()
        # RETURNING, not rowcount: the ORM session reports -1 for this statement on PostgreSQL
        return uow.session.execute(stmt.returning(self.rt.inbox.c.event_id)).first() is not None

    def mark_processed_many(self, conn, envs: list[Envelope]) -> set[str]:
        """Record the events as processed in the transaction on `conn`; returns the ids that were
        not processed before. One statement: on PostgreSQL an INSERT … SELECT FROM unnest(arrays)
        (the same SQL text for any batch size, so it is prepared once), elsewhere an executemany
        SQLAlchemy renders as a multi-row INSERT. Ids in sorted order, so two consumers inserting
        overlapping batches take the unique-index locks in the same order."""
        now = self.rt.clock.now()
        unique = sorted({e.id: e for e in envs}.values(), key=lambda e: e.id)
        if self._unnest is not None:
            return set(conn.execute(self._unnest, {"ids": [e.id for e in unique], "types": [e.type for e in unique],
                                                   "at": now}).scalars())
        rows = [{"event_id": e.id, "event_type": e.type, "processed_at": now} for e in unique]
        return set(conn.execute(self._insert_many, rows).scalars())

    # -- one delivery --------------------------------------------------------------------------
    def __call__(self, delivery: Delivery):
        return self.handle_batch([delivery])[0]

    def _parse(self, delivery: Delivery):
        """(envelope, payload, handler) to run, or the decision when there is nothing to run."""
        try:
            env = Envelope.from_json(delivery.body)
            payload = REGISTRY.validate_incoming(env.type, env.version, env.payload)
        except (EnvelopeError, EventValidationError, UnknownEventType) as exc:
            # it will never get better by waiting: straight to the dead-letter queue (labels looked up
            # each time: the routing key of a bad message is not from a known set)
            metrics.EVENTS_CONSUMED.labels(self.rt.name, delivery.routing_key, "invalid").inc()
            return Outcome.DEAD, f"invalid event: {exc}", 0
        handler = self.handlers.get(env.type)
        if handler is None:
            self._count(env.type, "ignored")
            return Outcome.ACK, None, 0
        return env, payload, handler

    def _one(self, delivery: Delivery, env: Envelope, payload: dict, handler):
        """The event in a transaction of its own."""
        started = time.perf_counter()
        with context.bound(env.correlation_id or env.id, env.id):
            try:
                with self.rt.uow() as uow:
                    if not self.mark_processed(uow, env):
                        self._count(env.type, "duplicate")
                        return Outcome.ACK, None, 0
                    handler(uow, env, payload)
                    if failed_transaction(uow.session.connection()):
                        # the handler caught a database error: COMMIT would roll back, and we would
                        # acknowledge an event whose effects (and inbox row) are gone
                        raise RuntimeError("the handler left its transaction aborted by a database error")
                    uow.commit()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("database unavailable, event will be tried again", extra={"event_type": env.type})
                    return Outcome.REQUEUE, f"database unavailable: {exc}", self.delays[0]
                return self._failed(delivery, env, exc)
        self._count(env.type, "ok")
        self._observe(env.type, time.perf_counter() - started)
        return Outcome.ACK, None, 0

    # -- a batch ---------------------------------------------------------------------------------
    def handle_batch(self, deliveries: list[Delivery]) -> list:
        """One decision per delivery, in order (see the module's docstring)."""
        decisions: list = [None] * len(deliveries)
        work = []  # (index, delivery, envelope, payload, handler)
        for i, d in enumerate(deliveries):
            parsed = self._parse(d)
            if isinstance(parsed[0], Outcome):
                decisions[i] = parsed
            else:
                work.append((i, d, *parsed))
        if len(work) == 1 and not self._own:
            i, d, env, payload, handler = work[0]
            decisions[i] = self._one(d, env, payload, handler)
        elif work:
            try:
                outcomes = self._together(work)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("database unavailable, events will be tried again", extra={"count": len(work)})
                    for i, *_ in work:
                        decisions[i] = (Outcome.REQUEUE, f"database unavailable: {exc}", self.delays[0])
                else:
                    # find the culprit: every event again in a transaction of its own
                    log.info("a handler failed in a batch, handling the batch one event at a time",
                             extra={"count": len(work), "error": str(exc)[:500]})
                    for i, d, env, payload, handler in work:
                        decisions[i] = self._one(d, env, payload, handler)
            else:
                counts = collections.Counter()  # one counter increment per (type, label) and batch
                for (i, _d, env, _p, _h), (label, seconds) in zip(work, outcomes):
                    counts[(env.type, label)] += 1
                    if seconds is not None:
                        self._observe(env.type, seconds)
                    decisions[i] = _ACK
                for (event_type, label), n in counts.items():
                    self._count(event_type, label, n)
        return decisions

    def _together(self, work) -> list[tuple[str, float | None]]:
        """Every event of `work` in one transaction; raises (everything rolled back) if any fails.
        Returns, per event, the metrics label and the handler's time (on PostgreSQL without the
        time its pipelined writes take to come back)."""
        if not self._own or self._owner not in (None, threading.get_ident()):
            with self._connect() as conn:
                return self._in_transaction(conn, work)
        self._owner = threading.get_ident()
        fresh = self._conn is None
        while True:
            if self._conn is None:
                self._conn = self._connect()  # the pool's pre-ping checks it
            try:
                return self._in_transaction(self._conn, work)
            except Exception as exc:
                lost = _lost(self._conn, exc)
                if lost or not _idle(self._conn):
                    self.close()
                if fresh or not lost:
                    raise
            # the connection kept since the last batch is gone (database restarted, network cut): once
            # more on a new one, as the pool's pre-ping would have done. Nothing of the batch is applied
            # twice: had its COMMIT gone through, the inbox rows now make every event a duplicate.
            log.info("database connection lost since the last batch, handling the batch on a new one")
            fresh = True

    def _connect(self):
        """A connection for batches. On PostgreSQL in autocommit mode, so that `pipelined` can send
        the batch's BEGIN with its first statement (psycopg's own BEGIN is a round trip of its own);
        SQLAlchemy sets the mode back when the connection returns to the pool."""
        conn = self.rt.engine.connect()
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def _run_handlers(self, conn, session, work, new: set[str]) -> tuple[list, int]:
        """The handlers of the events in `new` (the others are duplicates), in `session` on the
        transaction on `conn`, then the outbox rows they emitted; (outcomes, events emitted)."""
        outcomes = []
        emitted = 0
        for _i, _d, env, payload, handler in work:
            if env.id not in new:  # processed before, or a second copy within this batch
                outcomes.append(("duplicate", None))
                continue
            new.discard(env.id)
            started = time.perf_counter()
            with context.bound(env.correlation_id or env.id, env.id):
                with UnitOfWork(self.rt, conn, session=session) as uow:
                    handler(uow, env, payload)
                    emitted += uow.emitted
            outcomes.append(("ok", time.perf_counter() - started))
        write_outbox(self.rt, session)  # the batch's events: one INSERT, pipelined
        session.flush()
        return outcomes, emitted

    def _in_transaction(self, conn, work) -> list[tuple[str, float | None]]:
        with conn.begin() as tx:
            session = joined_session(self.rt, conn)  # one session for the batch's handlers
            try:
                with pipelined(conn, begin=True) as commit_with_last_sync:
                    # BEGIN goes with this statement (it syncs the pipeline: its result is read)
                    new = self.mark_processed_many(conn, [w[2] for w in work])
                    outcomes, emitted = self._run_handlers(conn, session, work, new)
                    if not tx.is_active:  # a handler rolled the shared transaction back: nothing of it holds
                        raise RuntimeError("a handler ended the batch's transaction; handling its events one by one")
                    if failed_transaction(conn):  # a handler swallowed a database error: COMMIT would roll back
                        raise RuntimeError("the batch's transaction is aborted; handling its events one by one")
                    commit_with_last_sync()
            finally:
                session.close()
        if emitted:
            metrics.EVENTS_EMITTED.labels(self.rt.name).inc(emitted)
            self.rt.outbox_wake.set()
        return outcomes

    def _failed(self, delivery: Delivery, env: Envelope, exc: Exception):
        metrics.EVENTS_FAILED.labels(self.rt.name, env.type).inc()
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if delivery.attempts < len(self.delays):
            delay = self.delays[delivery.attempts]
            log.warning("handler failed, will retry", extra={"event_type": env.type, "event_id": env.id,
                                                              "attempt": delivery.attempts + 1, "retry_in_ms": delay,
                                                              "error": error})
            return Outcome.RETRY, error, delay
        log.error("handler failed for good, dead-lettered", extra={"event_type": env.type, "event_id": env.id,
                                                                    "attempts": delivery.attempts + 1, "error": error})
        self._count(env.type, "dead")
        return Outcome.DEAD, error, 0


@functools.lru_cache(maxsize=1024)
def _deferrable(statement: str) -> bool:
    """A statement whose result nobody reads: an INSERT with no RETURNING and no ON CONFLICT (whose
    rowcount a caller may check). SELECT, UPDATE and DELETE (rowcount) wait for their result."""
    head = statement.lstrip()[:6].upper()
    upper = statement.upper()
    return head == "INSERT" and "RETURNING" not in upper and "ON CONFLICT" not in upper


@contextlib.contextmanager
def pipelined(conn, begin: bool = False):
    """On PostgreSQL, psycopg's pipeline mode over the block: the batch's INSERTs whose result no one
    reads (see `_deferrable`) are sent without waiting for the server, so the handlers' writes cost
    about one round trip for the batch instead of one each. Any other statement syncs the pipeline
    first (its result and every earlier one are in when it returns), so reads see the earlier writes
    and rowcounts are right. An error of a deferred INSERT surfaces at a later statement or when the
    block ends, and fails the batch, which is then handled one event per transaction without
    pipelining (so the failing event is the one retried). Elsewhere: nothing.

    Savepoints (`session.begin_nested()`): the SAVEPOINT syncs (so an earlier deferred error shows
    there, before the savepoint exists, and aborts the whole transaction), and every statement inside
    a savepoint is synced as it runs, so its error is raised at that statement, where the handler's
    `except` expects it; after any error raised by a statement the pipeline is synced up to it
    (`_resync_after_error`), so the ROLLBACK TO SAVEPOINT that follows runs and the batch goes on.
    Deferring resumes when the savepoint ends.

    Yields `commit`: called last in the block, it queues the transaction's COMMIT, which then goes with
    the pipeline's closing sync instead of a round trip of its own; the block's end raises if it
    failed. Safe against an aborted transaction (whose COMMIT would report success and roll back):
    an error already read shows in the transaction status, which the caller checks first, and an
    error not yet read aborts the pipeline up to the sync, so the COMMIT is skipped and the error
    raised. On other databases `commit` does nothing (the transaction's own commit follows).

    begin=True: `conn` is in autocommit mode (`Dispatcher._connect`) and the block opens the
    transaction itself with a BEGIN queued ahead of the block's first statement, so both go in one
    round trip (in a transaction psycopg opens, its BEGIN is synced on its own)."""
    if conn.dialect.name != "postgresql":
        yield _nothing
        return
    driver = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    engine = conn.engine
    if engine not in _listening:  # once per engine: listening per block cost ~0.1 ms a request
        event.listen(engine, "handle_error", _resync_after_error)
        event.listen(engine, "after_cursor_execute", _sync_unless_deferred)
        _listening.add(engine)
    try:
        with driver.pipeline() as pipe:
            if begin:
                driver.execute("BEGIN")
            conn.info[_PIPELINE] = pipe
            try:
                # SQLAlchemy's own commit afterwards finds the transaction ended and sends nothing
                yield functools.partial(driver.execute, "COMMIT")
            finally:
                conn.info.pop(_PIPELINE, None)
    except dbapi_error as exc:
        # the last deferred results come back as the pipeline ends, outside any execute: wrap their
        # error as SQLAlchemy would (IntegrityError, OperationalError…), so that `is_transient`
        # tells a lost database (requeue the batch) from a bad event (one by one)
        raise DBAPIError.instance(None, None, exc, dbapi_error, dialect=conn.dialect) from exc


_PIPELINE = "crm_inbox_pipeline"  # Connection.info key: the psycopg pipeline `pipelined` has open
_listening: weakref.WeakSet = weakref.WeakSet()  # engines with the two listeners below


def _sync_unless_deferred(conn, _cursor, statement, _params, _context, _many) -> None:
    """after_cursor_execute (engine-wide, acts only inside `pipelined`): a statement whose result is
    read, or any statement inside a savepoint, syncs the pipeline, inside SQLAlchemy's execute (so
    its errors come wrapped as usual)."""
    pipe = conn.info.get(_PIPELINE)
    if pipe is not None and (not _deferrable(statement) or conn.in_nested_transaction()):
        pipe.sync()


def _resync_after_error(ctx) -> None:
    """handle_error (engine-wide, acts only inside `pipelined`): a statement raised an error read
    before the pipeline's sync (psycopg reads replies as it sends), so the pipeline is left aborted
    and the server skips everything up to the next sync, a ROLLBACK TO SAVEPOINT included. Sync it
    now: the transaction is then simply in error (or back at the savepoint once rolled back to it)."""
    conn = ctx.connection
    pipe = conn.info.get(_PIPELINE) if conn is not None and not conn.closed else None
    if pipe is None:
        return
    from psycopg.pq import PipelineStatus
    with contextlib.suppress(Exception):  # the error being raised is the one that matters
        if pipe.pgconn.pipeline_status == PipelineStatus.ABORTED:
            pipe.sync()


def _nothing() -> None:
    pass


def _idle(conn) -> bool:
    """The connection is usable for the next batch: no transaction or pipeline left open."""
    if conn.closed or conn.invalidated:
        return False
    from psycopg.pq import TransactionStatus
    with contextlib.suppress(Exception):
        driver = conn.connection.driver_connection
        return not driver.broken and driver.info.transaction_status == TransactionStatus.IDLE
    return False


def _lost(conn, exc: Exception) -> bool:
    """The error says the connection is gone (as opposed to a bad event or a busy database)."""
    if isinstance(exc, DisconnectionError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    if conn.closed or conn.invalidated:
        return True
    with contextlib.suppress(Exception):
        return conn.connection.driver_connection.broken
    return True


def failed_transaction(conn) -> bool:
    """The transaction on `conn` is aborted by an error (PostgreSQL): its COMMIT would roll back."""
    if conn.dialect.name != "postgresql":
        return False
    from psycopg.pq import TransactionStatus
    return conn.connection.driver_connection.info.transaction_status == TransactionStatus.INERROR


def is_transient(exc: Exception) -> bool:
    """Infrastructure trouble that waiting cures (database down or locked), as opposed to a bug or
    bad data, which must use up the retries and reach the dead-letter queue."""
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))):
        text = str(exc.orig or exc).lower()
        return exc.connection_invalidated or any(s in text for s in (
            "connection", "could not connect", "server closed", "terminating", "timeout", "database is locked"))
    return False
