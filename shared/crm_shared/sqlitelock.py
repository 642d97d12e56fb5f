"""One writer at a time per SQLite file, queued without SQLite's busy handler's growing sleeps.

Every transaction on the embedded default takes SQLite's write lock up front (`BEGIN IMMEDIATE`,
see `db.make_engine` and the SQLite bus). When the lock is taken, SQLite's busy handler retries
after sleeps that grow from 1 ms to 100 ms (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100, ...): a
writer that arrives while another holds the lock for 2 ms often sleeps 8–50 ms, and under load
the waiters that sleep longest keep losing to newcomers (hundreds of ms at p99, seconds now and
then: bench/sqlite_writers.py). Here a writer first queues on a lock of its process (its threads
wake in turn the moment it is free), and then, alone for its process, takes an exclusive `flock`
of a file beside the database (`<file>-writelock`), trying again every 0.2 ms at first and every
2 ms at most. The kernel releases a dead process's flock by itself (even after SIGKILL). SQLite's
own lock and busy timeout stay underneath, for writers that don't come through here (the sqlite3
shell, an older release of a service during a rollout).

A writer waits at most WAIT_SECONDS (30 s, SQLite's busy_timeout here) in all and then gets
SQLite's own error, "database is locked", which the web layer answers with 503 and Retry-After as
before; a thread that opens a second transaction on a file while holding one fails that way rather
than hanging. Lock order, where a transaction on one file writes to another: a service's database,
then the bus file (the relay); never the other way."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

WAIT_SECONDS = 30.0  # how long a writer waits for the lock, as SQLite's busy_timeout, then "database is locked"
MAX_POLL_SECONDS = 0.002  # between two tries at another process's lock
_locks: dict[str, "WriteLock"] = {}
_registry_lock = threading.Lock()


class WriteLock:
    def __init__(self, db_path: str):
        self.path = os.path.abspath(db_path) + "-writelock"
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # An open file description is shared by a forked child, and with it the flock: each
        # process opens its own.
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (WAIT_SECONDS if timeout is None else timeout)
        if not self._threads.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._flock(self._file(), deadline)
        except BaseException:
            self._threads.release()
            raise

    @staticmethod
    def _flock(fd: int, deadline: float) -> None:
        # A blocking flock() cannot time out, so the one waiting thread of a process tries again
        # every 0.2 ms at first, every 2 ms at most (SQLite's busy handler: 1 ms, growing to 100).
        delay = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    def release(self) -> None:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _after_fork(self) -> None:
        # the parent's threads do not exist here: a lock one of them held would never be released
        self._threads = threading.Lock()
        self._fd, self._pid = None, 0


def for_file(db_path: str) -> WriteLock | None:
    """The process's lock for a database file (None for an in-memory database: one connection)."""
    if not db_path or db_path == ":memory:" or db_path.startswith("file::memory:"):
        return None
    key = os.path.abspath(db_path)
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = WriteLock(key)
        return lock


def _reset_after_fork() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock in _locks.values():
        lock._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


class LockingConnection(sqlite3.Connection):
    """A sqlite3 connection that gives the file's write lock back when its transaction ends
    (`db.make_engine` takes it just before `BEGIN IMMEDIATE`)."""
    write_lock: WriteLock | None = None
    holds_write_lock = False

    def take_write_lock(self, timeout: float | None = None) -> None:
        if self.write_lock is not None and not self.holds_write_lock:
            self.write_lock.acquire(timeout)
            self.holds_write_lock = True

    def give_back_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            self.write_lock.release()

    def commit(self):
        try:
            super().commit()
        finally:
            # a COMMIT that failed with SQLITE_BUSY leaves the transaction open; SQLAlchemy rolls
            # it back next, which gives the lock back if this did not
            if self.in_transaction is False:
                self.give_back_write_lock()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self.give_back_write_lock()

    def close(self):
        try:
            super().close()
        finally:
            self.give_back_write_lock()
