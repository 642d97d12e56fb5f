"""A short-lived, per-process cache of small configuration read on every intake (scoring weights,
routing rules). A change made through this process is seen at once (the writer clears the cache);
other processes see it within `TTL` seconds."""
from __future__ import annotations

import threading
import time

TTL = 5.0
_lock = threading.Lock()
_store: dict = {}


def _key(session, name: str):
    return (str(session.get_bind().url), name)


def get(session, name: str, load):
    key = _key(session, name)
    now = time.monotonic()
    with _lock:
        hit = _store.get(key)
    if hit is not None and now - hit[0] < TTL:
        return hit[1]
    value = load(session)
    with _lock:
        _store[key] = (now, value)
    return value


def clear() -> None:
    with _lock:
        _store.clear()
