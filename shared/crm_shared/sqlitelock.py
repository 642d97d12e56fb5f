"""One writer at a time per SQLite file, queued in the kernel instead of in SQLite's busy handler.

Every transaction on the embedded default takes SQLite's write lock up front (`BEGIN IMMEDIATE`,
see `db.make_engine` and the SQLite bus). When the lock is taken, SQLite's busy handler retries
after sleeps that grow from 1 ms to 100 ms (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100, ...): a
writer that arrives while another holds the lock for 2 ms often sleeps 8–50 ms, and under load
the waiters that sleep longest keep losing to newcomers (p99 in the hundreds of ms, seconds now
and then, in bench/TUNING.md section 18's probe). Here a writer first queues on a lock of its
process (threads wake in turn as soon as it is free) and then on an exclusive `flock` of a file
beside the database (`<file>-writelock`), which the kernel hands to a waiting process the moment
the holder lets go, and which it releases by itself when the holder's process dies (even by
SIGKILL). SQLite's own lock and busy timeout stay underneath, for writers that don't go through
here (the sqlite3 shell, an older release of a service during a rollout).

Waits: a thread waits for the others of its process up to `timeout` seconds and then gets
SQLite's own error ("database is locked"), so a thread that opens a second transaction on the same
file while holding one fails as it did before rather than hanging. Between processes the wait
has no time limit: a process whose transaction stays open keeps the others waiting for as long as
SQLite's lock would have made them fail and retry. Lock order, where a transaction on one file
writes to another: a service's database, then the bus file (the relay); never the other way."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

WAIT_SECONDS = 30.0  # how long a thread waits for the others of its process (SQLite's busy_timeout)
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
        if not self._threads.acquire(timeout=WAIT_SECONDS if timeout is None else timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

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
