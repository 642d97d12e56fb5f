"""Time source. Everything that reads the time takes a clock, so tests can control it.

`Clock` is the real time. `FrozenClock` moves only when told to (one process). `FileClock` is the
development and test clock that every process of a platform shares: the real time plus an offset
read from the file named by `CRM_CLOCK_FILE` (`crm clock advance --days 31` moves it), so a test or
a demo can make a payment overdue or a contract near its end without waiting a month. It is refused
with `CRM_ENV=production` (`Settings.check`). A worker's scheduler runs its jobs at once when the
file is written (`Clock.epoch`), so what fell due in the skipped time happens within a second."""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone


class Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def epoch(self):
        """Changes whenever the time is moved by hand (never, for the real clock): the scheduler
        runs every job again when it sees a new epoch."""
        return None


class FrozenClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        # always UTC, like Clock: SQLite keeps a datetime's wall time and drops its offset
        self._at = at.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def advance(self, **delta) -> datetime:
        with self._lock:
            self._at += timedelta(**delta)
            return self._at

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        with self._lock:
            self._at = at.astimezone(timezone.utc)


def read_offset(path: str) -> float:
    """The offset in seconds kept in a clock file (0 when the file does not exist)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return 0.0
    offset = data.get("offset_seconds", 0) if isinstance(data, dict) else None
    if not isinstance(offset, (int, float)) or isinstance(offset, bool):
        raise ValueError(f"{path}: expected {{\"offset_seconds\": <number>}}")
    return float(offset)


def write_offset(path: str, seconds: float) -> None:
    """Set the offset, atomically (a reader sees the old file or the new one, never half of it)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".clock-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"offset_seconds": float(seconds), "written_at_ns": time.time_ns()}, f)
    os.replace(tmp, path)


def nudge(path: str) -> None:
    """Rewrite the clock file without moving the time: every worker sharing it runs its jobs now
    (whatever is due: overdue payments, renewals, recycling, SLA scans)."""
    write_offset(path, read_offset(path))


def advance(path: str, **delta) -> float:
    """Move the shared clock forward (or back, with negative values); returns the new offset."""
    offset = read_offset(path) + timedelta(**delta).total_seconds()
    write_offset(path, offset)
    return offset


class FileClock(Clock):
    """Real time plus the offset in a file shared by every process. The file is re-read when its
    modification time or size changes (one stat per reading)."""

    def __init__(self, path: str):
        self.path = path
        self._stamp = None
        self._offset = 0.0
        self._lock = threading.Lock()

    def _current(self) -> float:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._offset = read_offset(self.path) if stamp is not None else 0.0
                self._stamp = stamp
            return self._offset

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self._current())

    def epoch(self):
        """Every write of the file is a new epoch, even one that keeps the offset (`nudge`): the
        file says when it was written. Read in full each time (the scheduler asks once a tick)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        with self._lock:
            self._stamp = None  # the next reading of the time re-reads the offset too
        return raw


def clock_from_settings(settings) -> Clock:
    """The clock a process runs on: the shared file clock when CRM_CLOCK_FILE is set (development
    and tests only), else the real one."""
    path = getattr(settings, "clock_file", None)
    return FileClock(path) if path else Clock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
