"""Idempotent consumption: a handler's effects and the processed event id commit in one
transaction, so a redelivered event has no second effect."""
from __future__ import annotations

import logging
import time
import traceback

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from . import context, metrics, tracing
from .bus import Delivery, Outcome
from .events import REGISTRY, Envelope, EventValidationError, UnknownEventType
from .events.envelope import EnvelopeError

log = logging.getLogger(__name__)


class Dispatcher:
    """Turns one delivery into a decision: acknowledge, retry later, or dead-letter."""

    def __init__(self, runtime, handlers: dict):
        self.rt = runtime
        self.handlers = tracing.traced_handlers(runtime, handlers)  # unchanged unless tracing is on
        self.delays = runtime.settings.retry_delays_ms or (1000,)
        dialect = runtime.engine.dialect.name
        self._insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(runtime.inbox)

    def mark_processed(self, uow, env: Envelope) -> bool:
        """Record the event as processed in this transaction; False if it already was."""
        stmt = self._insert.values(event_id=env.id, event_type=env.type,
                                   processed_at=self.rt.clock.now()).on_conflict_do_nothing()
        # RETURNING, not rowcount: the ORM session reports -1 for this statement on PostgreSQL
        return uow.session.execute(stmt.returning(self.rt.inbox.c.event_id)).first() is not None

    def __call__(self, delivery: Delivery):
        try:
            env = Envelope.from_json(delivery.body)
            payload = REGISTRY.validate_incoming(env.type, env.version, env.payload)
        except (EnvelopeError, EventValidationError, UnknownEventType) as exc:
            # it will never get better by waiting: straight to the dead-letter queue
            metrics.EVENTS_CONSUMED.labels(self.rt.name, delivery.routing_key, "invalid").inc()
            return Outcome.DEAD, f"invalid event: {exc}", 0
        handler = self.handlers.get(env.type)
        if handler is None:
            metrics.EVENTS_CONSUMED.labels(self.rt.name, env.type, "ignored").inc()
            return Outcome.ACK, None, 0
        started = time.perf_counter()
        with context.bound(env.correlation_id or env.id, env.id):
            try:
                with self.rt.uow() as uow:
                    if not self.mark_processed(uow, env):
                        metrics.EVENTS_CONSUMED.labels(self.rt.name, env.type, "duplicate").inc()
                        return Outcome.ACK, None, 0
                    handler(uow, env, payload)
                    uow.commit()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("database unavailable, event will be tried again", extra={"event_type": env.type})
                    return Outcome.REQUEUE, f"database unavailable: {exc}", self.delays[0]
                return self._failed(delivery, env, exc)
        metrics.EVENTS_CONSUMED.labels(self.rt.name, env.type, "ok").inc()
        metrics.HANDLER_LATENCY.labels(self.rt.name, env.type).observe(time.perf_counter() - started)
        return Outcome.ACK, None, 0

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
        metrics.EVENTS_CONSUMED.labels(self.rt.name, env.type, "dead").inc()
        return Outcome.DEAD, error, 0


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
