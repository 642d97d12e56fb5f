"""An embedded, broker-less transport that is as lossless as RabbitMQ.

Every process on the host opens the same SQLite file (WAL mode). Bindings are rows, so a publisher
in one process routes to queues another process declared. Publishing inserts one row per bound
queue in one transaction (the "confirm" is the commit). A consumer leases rows; acknowledging
deletes them; a consumer that dies leaves a lease that expires, and the message is delivered again.
Retries set a later `visible_at`; dead letters stay in the file, flagged, until replayed.

An idle consumer never takes the write lock: it polls every few ms (`poll_interval`, BUS_POLL_MS)
`PRAGMA data_version`, which changes when any other connection commits to the file, and only then
(or every `idle_poll_interval`, for retries coming due and leases expiring) runs a read-only
`SELECT EXISTS(…)` of a claimable row; `BEGIN IMMEDIATE` is taken only to claim rows it saw. After
`idle_after` seconds with nothing claimed from its own queue it polls at `idle_poll_interval`, however
busy the other queues of the file are (the first row it claims makes it fast again), so an idle
worker costs next to no CPU: a service's first event after a quiet second waits up to
`idle_poll_interval` (50 ms) more."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from typing import Iterable

from .. import sqlitelock
from .base import BatchCallback, Bus, BusError, DeadLetter, Delivery, Outcome, OutgoingMessage, Topology

SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (queue TEXT NOT NULL, pattern TEXT NOT NULL, PRIMARY KEY (queue, pattern));
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  message_id TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  body BLOB NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  visible_at REAL NOT NULL,
  lease_owner TEXT,
  leased_until REAL,
  dead INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
CREATE INDEX IF NOT EXISTS ix_messages_ready ON messages (queue, dead, visible_at, seq);
"""


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])
    return match(pattern.split("."), key.split("."))


class SqliteBus(Bus):
    def __init__(self, url: str, topology: Topology, lease_seconds: float = 60.0, poll_interval: float = 0.002,
                 idle_poll_interval: float = 0.05, idle_after: float = 1.0, **_):
        path = url.split("///", 1)[-1]
        if not path:
            raise ValueError("sqlite bus needs a file path: sqlite:///var/bus.db")
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        self.path = path
        self.topology = topology
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.idle_poll_interval = max(idle_poll_interval, poll_interval)
        self.idle_after = idle_after
        self._local = threading.local()
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._conn().executescript(SCHEMA)

    # -- plumbing -------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the crash or SIGKILL of any process (what we promise);
            # only a power cut may lose the last transactions. Set BUS_SQLITE_SYNC=FULL to cover that too.
            c.execute(f"PRAGMA synchronous={os.environ.get('BUS_SQLITE_SYNC', 'NORMAL')}")
            c.execute("PRAGMA busy_timeout=30000")
            self._local.conn = c
            lock_file = sqlitelock.lock_path(self.path)  # this connection's hold on the file's write lock
            self._local.write_lock = sqlitelock.WriteLock(lock_file) if lock_file else None
        return c

    class _Tx:
        """A write transaction on the bus file: the file's write lock (crm_shared.sqlitelock: the
        writers of every process take turns on a lock file, not in SQLite's busy handler's sleeps),
        then `BEGIN IMMEDIATE`; COMMIT or ROLLBACK, then the lock given back."""
        def __init__(self, conn, lock):
            self.conn, self.lock = conn, lock

        def __enter__(self):
            sqlitelock.begin_immediate(self.lock, self.conn.execute)
            return self.conn

        def __exit__(self, exc_type, *_):
            try:
                self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                if self.lock is not None:
                    self.lock.release()
            return False

    def _tx(self):
        try:
            return self._Tx(self._conn(), self._local.write_lock)
        except sqlite3.Error as exc:  # pragma: no cover - disk trouble
            raise BusError(str(exc)) from exc

    # -- topology -------------------------------------------------------------------------------
    def declare_consumer(self, service, event_types, retry_delays_ms=()):
        q = self.topology.queue(service)
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO bindings(queue, pattern) VALUES (?, ?)",
                          [(q, t) for t in event_types])

    # -- publish --------------------------------------------------------------------------------
    def publish(self, messages: list[OutgoingMessage]) -> set[str]:
        unroutable: set[str] = set()
        now = time.time()
        try:
            with self._tx() as c:
                bindings = c.execute("SELECT queue, pattern FROM bindings").fetchall()
                rows = []
                for m in messages:
                    queues = {q for q, p in bindings if topic_matches(p, m.routing_key)}
                    if not queues:
                        unroutable.add(m.message_id)
                    rows.extend((q, m.message_id, m.routing_key, m.body, now) for q in sorted(queues))
                c.executemany("INSERT INTO messages(queue, message_id, routing_key, body, visible_at) "
                              "VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise BusError(str(exc)) from exc
        return unroutable

    # -- consume --------------------------------------------------------------------------------
    def _claim(self, queue: str, limit: int) -> list[tuple]:
        now = time.time()
        with self._tx() as c:
            rows = c.execute(
                "SELECT seq, message_id, routing_key, body, attempts FROM messages "
                "WHERE queue = ? AND dead = 0 AND visible_at <= ? AND (leased_until IS NULL OR leased_until < ?) "
                "ORDER BY seq LIMIT ?", (queue, now, now, limit)).fetchall()
            if rows:
                c.executemany("UPDATE messages SET lease_owner = ?, leased_until = ? WHERE seq = ?",
                              [(self._owner, now + self.lease_seconds, r[0]) for r in rows])
        return rows

    _READY = ("SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ? AND dead = 0 AND visible_at <= ? "
              "AND (leased_until IS NULL OR leased_until < ?))")

    def _ready(self, queue: str) -> bool:
        """Is a row claimable now? A read in autocommit mode: no lock that a writer waits for."""
        now = time.time()
        return bool(self._conn().execute(self._READY, (queue, now, now)).fetchone()[0])

    def _data_version(self) -> int:
        """Changes whenever another connection (any process) commits to the file."""
        return self._conn().execute("PRAGMA data_version").fetchone()[0]

    def _settle(self, seq: int, decision) -> None:
        self._settle_many([(seq, decision)])

    def _settle_many(self, settled: list[tuple[int, tuple]]) -> None:
        """Apply each (seq, decision) of a batch, in one transaction."""
        now = time.time()
        with self._tx() as c:
            for seq, (outcome, error, delay_ms) in settled:
                if outcome is Outcome.ACK:
                    c.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                elif outcome in (Outcome.RETRY, Outcome.REQUEUE):
                    c.execute("UPDATE messages SET attempts = attempts + ?, visible_at = ?, lease_owner = NULL, "
                              "leased_until = NULL, error = ? WHERE seq = ?",
                              (int(outcome is Outcome.RETRY), now + delay_ms / 1000, error, seq))
                else:
                    c.execute("UPDATE messages SET attempts = attempts + 1, dead = 1, lease_owner = NULL, "
                              "leased_until = NULL, error = ? WHERE seq = ?", (error, seq))

    def _release(self, seqs: list[int]) -> None:
        if seqs:
            with self._tx() as c:
                c.executemany("UPDATE messages SET lease_owner = NULL, leased_until = NULL WHERE seq = ? "
                              "AND lease_owner = ?", [(s, self._owner) for s in seqs])

    def consume_batches(self, service: str, callback: BatchCallback, stop: threading.Event, prefetch: int = 100,
                        max_batch: int = 50) -> None:
        queue = self.topology.queue(service)
        max_batch = max(1, min(max_batch, prefetch))
        claim = max(max_batch, min(prefetch, 50))
        version = None     # PRAGMA data_version when the queue was last seen empty
        recheck_at = 0.0   # a retry's visible_at or a lease's end commits nothing: look anyway by then
        active_at = time.monotonic()
        while not stop.is_set():
            try:
                now = time.monotonic()
                looked = None  # this pass's answer of `_ready`, when it has asked already
                if version is not None:
                    seen = self._data_version()
                    idle = now - active_at > self.idle_after
                    if seen == version and now < recheck_at:
                        stop.wait(self.idle_poll_interval if idle else self.poll_interval)
                        continue
                    if seen != version and idle:
                        looked = self._ready(queue)
                        if not looked:  # other queues' traffic, nothing here: keep the slow pace
                            version, recheck_at = seen, now + self.idle_poll_interval
                            stop.wait(self.idle_poll_interval)
                            continue
                    version = seen
                else:
                    version = self._data_version()
                recheck_at = now + self.idle_poll_interval
                rows = self._claim(queue, claim) if (looked or self._ready(queue)) else []
            except sqlite3.OperationalError:
                version = None
                stop.wait(self.poll_interval)
                continue
            if not rows:
                stop.wait(self.poll_interval)
                continue
            version = None  # work: look again at once after this batch
            active_at = time.monotonic()
            for i in range(0, len(rows), max_batch):
                if stop.is_set():
                    self._release([r[0] for r in rows[i:]])
                    return
                chunk = rows[i:i + max_batch]
                decisions = list(callback([Delivery(message_id, key, bytes(body), attempts, handle=seq)
                                           for seq, message_id, key, body, attempts in chunk]))
                if len(decisions) != len(chunk):
                    raise ValueError(f"consumer callback returned {len(decisions)} decisions for {len(chunk)} messages")
                self._settle_many([(r[0], d) for r, d in zip(chunk, decisions)])

    # -- dead letters ---------------------------------------------------------------------------
    def dead_letters(self, service):
        rows = self._conn().execute(
            "SELECT message_id, routing_key, attempts, error, body FROM messages WHERE queue = ? AND dead = 1 "
            "ORDER BY seq", (self.topology.queue(service),)).fetchall()
        return [DeadLetter(m, k, a, e or "", bytes(b)) for m, k, a, e, b in rows]

    def replay(self, service, message_ids=None):
        q = self.topology.queue(service)
        with self._tx() as c:
            if message_ids is None:
                cur = c.execute("UPDATE messages SET dead = 0, attempts = 0, error = NULL, visible_at = ? "
                                "WHERE queue = ? AND dead = 1", (time.time(), q))
                return cur.rowcount
            n = 0
            for mid in message_ids:
                n += c.execute("UPDATE messages SET dead = 0, attempts = 0, error = NULL, visible_at = ? "
                               "WHERE queue = ? AND dead = 1 AND message_id = ?", (time.time(), q, mid)).rowcount
            return n

    def send_to_queue(self, service, messages):
        now = time.time()
        try:
            with self._tx() as c:
                c.executemany("INSERT INTO messages(queue, message_id, routing_key, body, visible_at) "
                              "VALUES (?, ?, ?, ?, ?)",
                              [(self.topology.queue(service), m.message_id, m.routing_key, m.body, now)
                               for m in messages])
        except sqlite3.Error as exc:
            raise BusError(str(exc)) from exc
        return len(messages)

    def queue_depth(self, service):
        (n,) = self._conn().execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND dead = 0",
                                    (self.topology.queue(service),)).fetchone()
        return n

    def ping(self):
        try:
            self._conn().execute("SELECT 1 FROM bindings LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise BusError(str(exc)) from exc

    def close(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
            if self._local.write_lock is not None:
                self._local.write_lock.close()

