"""A short-lived, per-process cache of the configuration the consumer reads for every event: the
custom subscriptions, the custom templates and the enabled webhooks (small tables that change by
hand, through the API). One entry per database engine, so two runtimes in one process (tests, two
databases) never see each other's.

Staleness (for operations): a change made through this process (its API, or the dispatch job
disabling a webhook) is seen at once, since the writer calls `clear` after its commit; another
process (the worker, when the change came through the web process) sees it within `TTL` seconds.
Until then events are planned with the previous configuration, as if they had arrived just before
the change."""
from __future__ import annotations

import threading
import time
import weakref

TTL = 5.0
_clock = time.monotonic      # tests replace it to step over the TTL without waiting
_lock = threading.Lock()
_store: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # engine -> {name: (loaded at, value)}
_generation: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # engine -> clears so far


def _engine(session_or_engine):
    bind = session_or_engine.get_bind() if hasattr(session_or_engine, "get_bind") else session_or_engine
    return bind.engine  # a Connection's engine, or the Engine itself


def get(session, name: str, load):
    """`load(session)`'s value, read again when older than TTL or cleared since."""
    engine = _engine(session)
    now = _clock()
    with _lock:
        hit = _store.get(engine, {}).get(name)
        generation = _generation.get(engine, 0)
    if hit is not None and now - hit[0] < TTL:
        return hit[1]
    value = load(session)
    with _lock:
        # a `clear` while we read (a commit in another thread) may mean what we read is already old
        if _generation.get(engine, 0) == generation:
            _store.setdefault(engine, {})[name] = (now, value)
    return value


def clear(session_or_engine) -> None:
    """Forget everything cached for this session's (or engine's) database: call after committing a
    change."""
    engine = _engine(session_or_engine)
    with _lock:
        _store.pop(engine, None)
        _generation[engine] = _generation.get(engine, 0) + 1
