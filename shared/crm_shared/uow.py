"""Unit of work: one database transaction holding a service's state change and the events it
emits (the transactional outbox)."""
from __future__ import annotations

from sqlalchemy import text

from . import context, metrics, tracing
from .events import REGISTRY, Envelope


class UnitOfWork:
    """`UnitOfWork(runtime)` owns its transaction. `UnitOfWork(runtime, connection)` joins a
    transaction the caller holds on `connection` (the consumer's batch): `commit()` then only
    flushes, and the caller commits or rolls back everything (and reports `emitted` afterwards)."""

    def __init__(self, runtime, connection=None):
        self.runtime = runtime
        self.connection = connection
        self.session = None
        self._emitted = 0

    def __enter__(self):
        if self.connection is None:
            self.session = self.runtime.session_factory()
        else:
            # rollback_only: the session's commit() does not commit the caller's transaction
            self.session = self.runtime.session_factory(bind=self.connection, join_transaction_mode="rollback_only")
        self._emitted = 0
        return self

    def __exit__(self, exc_type, exc, tb):
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
        self.session.execute(self.runtime.outbox.insert().values(
            event_id=env.id, event_type=event_type, aggregate_type=aggregate_type, aggregate_id=str(aggregate_id),
            envelope=env.to_json(), created_at=self.runtime.clock.now()))
        if self._emitted == 0 and self.runtime.is_postgres:
            # delivered to the relay's LISTEN at commit, and only if the transaction commits
            self.session.execute(text("SELECT pg_notify(:c, '')"), {"c": self.runtime.notify_channel})
        self._emitted += 1
        return env

    def commit(self):
        if self.connection is not None:
            self.session.flush()  # the caller commits the joined transaction, then counts `emitted`
            return
        self.session.commit()
        if self._emitted:
            metrics.EVENTS_EMITTED.labels(self.runtime.name).inc(self._emitted)
            self.runtime.outbox_wake.set()
            self._emitted = 0

    def rollback(self):
        self.session.rollback()
        self._emitted = 0
