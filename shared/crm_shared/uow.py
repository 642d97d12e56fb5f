"""Unit of work: one database transaction holding a service's state change and the events it
emits (the transactional outbox).

`emit` validates an event at once but only buffers its outbox row (in `session.info`, so the
handlers of a consumer batch, which share one session, share one buffer); the rows go to the
database in emit order, in one multi-row INSERT, when the unit of work commits (`write_outbox`).
On PostgreSQL the relay's LISTEN is woken by a statement-level trigger on `outbox` (the migrations'
`create_outbox_notify_trigger`), so the outbox costs one statement per unit of work. A rollback
(of the transaction, or of a savepoint the rows were emitted in) drops the buffered rows with it."""
from __future__ import annotations

import weakref

from sqlalchemy import bindparam, event, text

from . import context, metrics, tracing
from .db import driver_execute
from .events import REGISTRY, Envelope


_PENDING = "crm_outbox_pending"  # session.info: outbox rows emitted and not yet written, in emit order
_MARKS = "crm_outbox_marks"      # session.info: savepoint -> how many rows were pending when it began
_CHUNK = {"postgresql": 1000, "sqlite": 100}  # rows per INSERT (6 parameters a row: under each driver's limit)
_installed: weakref.WeakSet = weakref.WeakSet()  # session factories with the listeners below
_TRIGGER = "outbox_notify"  # the trigger's name (migrations.create_outbox_notify_trigger)
_COLUMNS = ("event_id", "event_type", "aggregate_type", "aggregate_id", "envelope", "created_at")  # of a row
_PREPARED_ROWS = 64  # row counts up to this get an INSERT built once per runtime (see `_insert_for`)


def joined_session(runtime, connection):
    """A session on the transaction the caller holds on `connection`. rollback_only: the session's
    commit() does not commit the caller's transaction, its rollback() rolls all of it back."""
    return runtime.session_factory(bind=connection, join_transaction_mode="rollback_only")


def write_outbox(runtime, session) -> int:
    """Write the rows emitted on `session` and not yet written: one INSERT … VALUES (…), (…) in emit
    order (the relay publishes in id order), with no RETURNING, so a pipelined batch
    (inbox.pipelined) sends it without waiting. Returns how many rows."""
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return 0
    chunk = _CHUNK.get(runtime.engine.dialect.name, 100)
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        stmt = _insert_for(runtime, len(part))
        if stmt is None:
            session.execute(runtime.outbox.insert().values(part))
        else:
            driver_execute(session, stmt, {f"{c}_{k}": row[c] for k, row in enumerate(part) for c in _COLUMNS})
    if runtime.is_postgres and not _trigger_notifies(runtime, session):
        # a schema made without the migrations (metadata.create_all: demos, benchmarks) has no
        # trigger: notify here, delivered at commit and only if the transaction commits
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": runtime.notify_channel})
    return len(rows)


def _insert_for(runtime, n: int):
    """The `INSERT INTO outbox (…) VALUES (:event_id_0, …), …, (…_{n-1})` of n rows, as a textual
    statement with typed parameters, built once per row count and runtime, or None above
    `_PREPARED_ROWS` rows. `outbox.insert().values([rows])` says the same, but SQLAlchemy cannot
    cache a multi-row VALUES (it has no cache key), so it compiled it again on every commit: about
    half a millisecond of an intake's CPU. A `text()` has a cache key (its text and parameters), so
    SQLAlchemy compiles this one once too. Larger writes (imports, big consumer batches) are rare
    and spread the compilation over many rows: they keep the Core statement."""
    if n > _PREPARED_ROWS:
        return None
    cache = runtime.__dict__.get("_outbox_inserts")
    if cache is None:
        cache = runtime.__dict__["_outbox_inserts"] = {}
    stmt = cache.get(n)
    if stmt is None:
        table = runtime.outbox
        quote = runtime.engine.dialect.identifier_preparer
        head = f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(c) for c in _COLUMNS)}) VALUES "
        values = ", ".join("(" + ", ".join(f":{c}_{k}" for c in _COLUMNS) + ")" for k in range(n))
        stmt = cache[n] = text(head + values).bindparams(
            *[bindparam(f"{c}_{k}", type_=table.c[c].type) for k in range(n) for c in _COLUMNS])
    return stmt


def _trigger_notifies(runtime, session) -> bool:
    """Does a trigger on this database's `outbox` notify the runtime's channel? Asked once per
    runtime (the migrations run before the code that relies on them)."""
    known = runtime.__dict__.get("_outbox_trigger")
    if known is None:
        known = runtime.__dict__["_outbox_trigger"] = bool(session.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('outbox') AND tgname = :t "
            "AND tgenabled <> 'D' AND position(convert_to(:c, 'UTF8') IN tgargs) > 0)"),
            {"t": _TRIGGER, "c": runtime.notify_channel}).scalar())
    return known


def _install(runtime) -> None:
    """Listeners on the runtime's session factory: the buffer follows the transaction (a rolled
    back savepoint drops the rows emitted in it, a rolled back transaction all of them), and a
    commit of the session itself (not through `UnitOfWork.commit`) still writes them first."""
    factory = runtime.session_factory
    if factory in _installed:
        return

    @event.listens_for(factory, "after_transaction_create")
    def _savepoint(session, transaction):
        if transaction.nested:  # (weak keys: a savepoint's mark goes with it)
            marks = session.info.get(_MARKS)
            if marks is None:
                marks = session.info[_MARKS] = weakref.WeakKeyDictionary()
            marks[transaction] = len(session.info.get(_PENDING, ()))

    @event.listens_for(factory, "after_soft_rollback")
    def _rolled_back(session, previous):
        pending = session.info.get(_PENDING)
        if previous.nested:
            mark = session.info.get(_MARKS, {}).get(previous)
            if pending is not None and mark is not None:
                del pending[mark:]
        elif previous.parent is None:
            session.info.pop(_PENDING, None)

    @event.listens_for(factory, "before_commit")
    def _committing(session):
        write_outbox(runtime, session)

    _installed.add(factory)


class UnitOfWork:
    """`UnitOfWork(runtime)` owns its transaction. `UnitOfWork(runtime, connection)` joins a
    transaction the caller holds on `connection` (the consumer's batch): `commit()` then only
    writes the outbox rows and flushes, and the caller commits or rolls back everything (and
    reports `emitted` afterwards).
    `UnitOfWork(runtime, connection, session=s)` also shares the caller's session `s` (joined to
    that transaction, see `joined_session`), which it neither closes nor commits: the handlers of
    one batch then cost one session, not one each, and their outbox rows one INSERT, which the
    caller writes (`write_outbox`) before it commits."""

    def __init__(self, runtime, connection=None, session=None):
        if session is not None and connection is None:
            raise ValueError("a shared session belongs to the caller's transaction: pass its connection too")
        self.runtime = runtime
        self.connection = connection
        self.session = session
        self._shared = session is not None
        self._emitted = 0
        _install(runtime)

    def __enter__(self):
        if self._shared:
            pass
        elif self.connection is None:
            self.session = self.runtime.session_factory()
        else:
            self.session = joined_session(self.runtime, self.connection)
        self._emitted = 0
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._shared:
            return False  # the caller's session and transaction: the caller ends both
        try:
            if self.connection is None and self.session.in_transaction():
                self.session.rollback()
        finally:
            self.session.info.pop(_PENDING, None)  # never written: not committed
            self.session.close()  # joined: leaves the caller's transaction as it is
        return False

    @property
    def emitted(self) -> int:
        """Events emitted in this unit of work and not yet counted as committed."""
        return self._emitted

    def emit(self, event_type: str, payload: dict, *, aggregate_type: str, aggregate_id, version: int | None = None) -> Envelope:
        """Validate the payload against the catalogue (raises here if it does not fit) and add the
        event to the outbox rows of this transaction, written when it commits. It leaves the service
        only if the transaction commits."""
        version = version or REGISTRY.latest(event_type)
        body = REGISTRY.validate_outgoing(event_type, version, payload)
        env = Envelope(type=event_type, version=version, payload=body, producer=self.runtime.name,
                       occurred_at=self.runtime.clock.now().isoformat(),
                       correlation_id=context.correlation_id.get() or context.new_id(),
                       causation_id=context.causation_id.get())
        env = tracing.on_emit(self.runtime, env)  # no-op unless tracing is on
        self.session.info.setdefault(_PENDING, []).append(dict(
            event_id=env.id, event_type=event_type, aggregate_type=aggregate_type, aggregate_id=str(aggregate_id),
            envelope=env.to_json(), created_at=self.runtime.clock.now()))
        self._emitted += 1
        return env

    def commit(self):
        if self.connection is not None:
            write_outbox(self.runtime, self.session)
            self.session.flush()  # the caller commits the joined transaction, then counts `emitted`
            return
        write_outbox(self.runtime, self.session)
        self.session.commit()
        if self._emitted:
            metrics.EVENTS_EMITTED.labels(self.runtime.name).inc(self._emitted)
            self.runtime.outbox_wake.set()
            self._emitted = 0

    def rollback(self):
        self.session.rollback()
        self.session.info.pop(_PENDING, None)
        self._emitted = 0
