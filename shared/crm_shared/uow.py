"""Unit of work: one database transaction holding a service's state change and the events it
emits (the transactional outbox)."""
from __future__ import annotations

from sqlalchemy import text

from . import context, metrics, tracing
from .events import REGISTRY, Envelope


_NOTIFIED = "crm_outbox_notified"  # session.info: this transaction already has its pg_notify


def joined_session(runtime, connection):
    """A session on the transaction the caller holds on `connection`. rollback_only: the session's
    commit() does not commit the caller's transaction, its rollback() rolls all of it back."""
    return runtime.session_factory(bind=connection, join_transaction_mode="rollback_only")


class UnitOfWork:
    """`UnitOfWork(runtime)` owns its transaction. `UnitOfWork(runtime, connection)` joins a
    transaction the caller holds on `connection` (the consumer's batch): `commit()` then only
    flushes, and the caller commits or rolls back everything (and reports `emitted` afterwards).
    `UnitOfWork(runtime, connection, session=s)` also shares the caller's session `s` (joined to
    that transaction, see `joined_session`), which it neither closes nor commits: the handlers of
    one batch then cost one session, not one each."""

    def __init__(self, runtime, connection=None, session=None):
        if session is not None and connection is None:
            raise ValueError("a shared session belongs to the caller's transaction: pass its connection too")
        self.runtime = runtime
        self.connection = connection
        self.session = session
        self._shared = session is not None
        self._emitted = 0

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
            self.session.close()  # joined: leaves the caller's transaction as it is
        return False

    @property
    def emitted(self) -> int:
        """Events written to the outbox in this unit of work and not yet counted as committed."""
        return self._emitted

    def emit(self, event_type: str, payload: dict, *, aggregate_type: str, aggregate_id, version: int | None = None) -> Envelope:
        """Validate the payload against the catalogue and write the event to the outbox, in this
        transaction. It leaves the service only if the transaction commits."""
        version = version or REGISTRY.latest(event_type)
        body = REGISTRY.validate_outgoing(event_type, version, payload)
        env = Envelope(type=event_type, version=version, payload=body, producer=self.runtime.name,
                       occurred_at=self.runtime.clock.now().isoformat(),
                       correlation_id=context.correlation_id.get() or context.new_id(),
                       causation_id=context.causation_id.get())
        env = tracing.on_emit(self.runtime, env)  # no-op unless tracing is on
        # a list of one row: an executemany, which needs no RETURNING of the new id, so in a pipelined
        # batch (inbox.pipelined) it is sent without waiting for the server
        self.session.execute(self.runtime.outbox.insert(), [dict(
            event_id=env.id, event_type=event_type, aggregate_type=aggregate_type, aggregate_id=str(aggregate_id),
            envelope=env.to_json(), created_at=self.runtime.clock.now())])
        if self.runtime.is_postgres and not self.session.info.get(_NOTIFIED):
            # delivered to the relay's LISTEN at commit, and only if the transaction commits; once
            # per transaction (the handlers of a batch share one session)
            self.session.execute(text("SELECT pg_notify(:c, '')"), {"c": self.runtime.notify_channel})
            self.session.info[_NOTIFIED] = True
        self._emitted += 1
        return env

    def commit(self):
        if self.connection is not None:
            self.session.flush()  # the caller commits the joined transaction, then counts `emitted`
            return
        self.session.commit()
        self.session.info.pop(_NOTIFIED, None)
        if self._emitted:
            metrics.EVENTS_EMITTED.labels(self.runtime.name).inc(self._emitted)
            self.runtime.outbox_wake.set()
            self._emitted = 0

    def rollback(self):
        self.session.rollback()
        self.session.info.pop(_NOTIFIED, None)
        self._emitted = 0
