"""One writer at a time per SQLite file, queued without SQLite's busy handler's growing sleeps.

Every transaction on the embedded default takes SQLite's write lock up front (`BEGIN IMMEDIATE`,
see `db.make_engine` and the SQLite bus). When the lock is taken, SQLite's busy handler retries
after sleeps that grow from 1 ms to 100 ms (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100, ...): a
writer that arrives while another holds the lock for 2 ms often sleeps 8–50 ms, and under load
the waiters that sleep longest keep losing to newcomers (hundreds of ms at p99, seconds now and
then: bench/sqlite_writers.py). Here every connection, before its `BEGIN IMMEDIATE`, takes an
exclusive `flock` of a file beside the database (`<file>-writelock`) through a descriptor of its
own, trying again every 0.2 ms at first and every 2 ms at most, so whichever writer of whichever
process asks next gets it within 2 ms of its release. (A lock per process that its threads
queue on would hand the file from thread to thread of one process while the other processes
wait: one process's CPU for all the work.) The kernel releases a dead process's flock by itself (even after SIGKILL). SQLite's
own lock and busy timeout stay underneath, for writers that don't come through here (the sqlite3
shell, an older release of a service during a rollout).

A writer waits at most WAIT_SECONDS (30 s, SQLite's busy_timeout here) in all and then gets
SQLite's own error, "database is locked", which the web layer answers with 503 and Retry-After as
before; a thread that opens a second transaction on a file while holding one on another connection
fails that way, as it did without this lock. Lock order, where a transaction on one file writes to another: a service's database,
then the bus file (the relay); never the other way."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import time

WAIT_SECONDS = 30.0  # how long a writer waits for the lock, as SQLite's busy_timeout, then "database is locked"
MAX_POLL_SECONDS = 0.002  # the longest pause between two tries


def lock_path(db_path: str) -> str | None:
    """The lock file of a database file (None for an in-memory database: one connection)."""
    if not db_path or db_path == ":memory:" or db_path.startswith("file::memory:"):
        return None
    return os.path.abspath(db_path) + "-writelock"


class WriteLock:
    """One connection's hold on a database file's write lock (its own open file description)."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self.held = False

    def acquire(self, timeout: float | None = None) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + (WAIT_SECONDS if timeout is None else timeout)
        delay = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # gives the lock back too
            self._fd, self.held = None, False


def begin_immediate(lock: WriteLock | None, execute) -> None:
    """The file's write lock (none for an in-memory database), then `execute("BEGIN IMMEDIATE")`;
    the lock given back if the BEGIN fails. The caller gives it back when the transaction ends."""
    if lock is not None and not lock.held:
        lock.acquire()
    try:
        execute("BEGIN IMMEDIATE")
    except BaseException:
        if lock is not None:
            lock.release()
        raise


class LockingConnection(sqlite3.Connection):
    """A sqlite3 connection that gives its file's write lock back when its transaction ends
    (`db.make_engine` takes it with `begin_immediate`)."""
    write_lock: WriteLock | None = None

    def commit(self):
        try:
            super().commit()
        finally:
            # a COMMIT that failed with SQLITE_BUSY leaves the transaction open; SQLAlchemy rolls
            # it back next, which gives the lock back
            if not self.in_transaction and self.write_lock is not None:
                self.write_lock.release()

    def rollback(self):
        try:
            super().rollback()
        finally:
            if self.write_lock is not None:
                self.write_lock.release()

    def close(self):
        try:
            super().close()
        finally:
            if self.write_lock is not None:
                self.write_lock.close()
