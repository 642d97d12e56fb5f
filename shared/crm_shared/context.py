"""Per-request / per-message context: the correlation id and the causation id.

Set from `X-Request-ID` on HTTP requests and from the envelope on consumed events, read when
events are emitted and when log lines are written."""
from __future__ import annotations

import contextvars
import uuid
from contextlib import contextmanager

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
causation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("causation_id", default=None)


def new_id() -> str:
    return str(uuid.uuid4())


@contextmanager
def bound(correlation: str | None, causation: str | None = None):
    t1 = correlation_id.set(correlation)
    t2 = causation_id.set(causation)
    try:
        yield
    finally:
        correlation_id.reset(t1)
        causation_id.reset(t2)
