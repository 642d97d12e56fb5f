"""The outbox relay: publishes committed events in commit order, waits for the broker's confirms,
then marks them sent. With the broker down nothing is lost: rows stay pending and go out when it is
back. It wakes on new rows (in-process event, PostgreSQL LISTEN/NOTIFY) rather than a long timer.

On PostgreSQL one relay per service is active: the one holding the service's session-level advisory
lock on a connection of its own, kept for as long as it runs (no pool checkout or lock per batch);
the others stand by and try to take the lock every STANDBY_RETRY seconds. Any error ends the
connection, and with it the lock: a killed backend or a restarted server lets a standby take over,
and the relay itself reconnects and takes the lock again if it is free."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib

from psycopg.rows import namedtuple_row
from sqlalchemy import Integer, bindparam, func, select, update

from . import metrics, tracing
from .bus import BusError, OutgoingMessage

log = logging.getLogger(__name__)


class Relay:
    IDLE_AFTER = 1.0   # s with nothing published before a relay on SQLite polls more slowly …
    IDLE_POLL = 0.05   # … at this period (s)
    STANDBY_RETRY = 1.0  # s between a standby relay's tries to take the lock (PostgreSQL)
    TOP_UP_FOR = 0.1   # s after its claim during which a streaming batch takes in newly committed rows

    def __init__(self, runtime, batch: int | None = None):
        self.rt = runtime
        self.batch = batch or runtime.settings.relay_batch
        self._lock_key = zlib.crc32(f"outbox:{runtime.name}".encode())
        ob = runtime.outbox
        pending = (select(ob.c.id).where(ob.c.published_at.is_(None)).order_by(ob.c.id)
                   .limit(bindparam("n", type_=Integer)).scalar_subquery())
        self._claim = (update(ob).where(ob.c.id.in_(pending))
                       .values(published_at=bindparam("now", type_=ob.c.published_at.type), attempts=ob.c.attempts + 1)
                       .returning(ob.c.id, ob.c.event_id, ob.c.event_type, ob.c.envelope))
        if not self._sqlite:  # the claim as psycopg runs it on the relay's own connection
            compiled = self._claim.compile(dialect=runtime.engine.dialect)
            self._claim_sql, self._claim_sql_params = str(compiled), dict(compiled.params)
        self._conn = None      # PostgreSQL: this relay's own connection while it holds the lock
        # PostgreSQL, set by `run`: rows committed while a batch's confirms are outstanding go out
        # at once, in the batch's transaction (`_publish_batch_pg`), not after its COMMIT
        self.streaming = False
        self.wake = runtime.outbox_wake
        self._retry_at = 0.0   # PostgreSQL: a standby does not try the lock again before this time

    @property
    def _sqlite(self) -> bool:
        return self.rt.engine.dialect.name == "sqlite"

    def _pending(self) -> bool:
        """SQLite: is any row pending? One lookup in the partial index `ix_outbox_pending`, run on
        the DBAPI connection in autocommit mode (a read in WAL mode: no lock a writer waits for)."""
        raw = self.rt.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                cur.execute("SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)")
                return bool(cur.fetchone()[0])
            finally:
                cur.close()
        finally:
            raw.close()

    def backlog(self) -> int:
        with self.rt.engine.connect() as c:
            return c.execute(select(func.count()).select_from(self.rt.outbox)
                             .where(self.rt.outbox.c.published_at.is_(None))).scalar_one()

    def run_once(self) -> int:
        """Publish one batch. Returns how many rows were published (0: nothing pending, or another
        relay holds the lock).

        The oldest pending rows are claimed and marked sent in one statement (`UPDATE … WHERE id IN
        (SELECT … ORDER BY id LIMIT n) RETURNING …`) inside this batch's transaction, then published;
        the transaction commits only once the broker has confirmed every message, so no other reader
        sees a row as sent before its confirm, and if publishing fails the rollback leaves every row
        of the batch pending.

        PostgreSQL: on the relay's own connection, which holds the lock (`_leader`); BEGIN and the
        claim go in one round trip (psycopg pipeline), the COMMIT in another: two round trips per
        batch besides the broker. Any error closes the connection, releasing the lock.

        SQLite: `engine.begin()` takes the write lock (`BEGIN IMMEDIATE`, see `db.make_engine`), so
        one relay at a time; an empty poll first asks, without any lock, whether a row is pending."""
        if not self._sqlite:
            raw = self._leader()
            if raw is None:
                return 0
            try:
                n = self._publish_batch_pg(raw)
            except BaseException:
                self.close()  # start afresh: a new connection, and the lock only if still free
                raise
        elif not self._pending():
            return 0
        else:
            with self.rt.engine.begin() as conn:
                rows = conn.execute(self._claim, self._claim_params()).all()
                ob = self.rt.outbox
                n = self._publish(rows, conn.rollback, lambda ids: conn.execute(
                    update(ob).where(ob.c.event_id.in_(ids)).values(unroutable=True)))
        if n:
            metrics.EVENTS_PUBLISHED.labels(self.rt.name).inc(n)
        return n

    def _claim_params(self, n: int | None = None) -> dict:
        return {"now": self.rt.clock.now(), "n": n or self.batch}

    def _publish_batch_pg(self, raw) -> int:
        """One batch on the relay's own psycopg connection (autocommit: the transaction is ours)."""
        with raw.cursor(row_factory=namedtuple_row) as cur:
            with raw.pipeline():  # BEGIN and the claim, then one Sync: a single round trip
                raw.execute("BEGIN")
                cur.execute(self._claim_sql, {**self._claim_sql_params, **self._claim_params()})
            rows = cur.fetchall()
            if not rows:
                raw.execute("ROLLBACK")
                return 0
            until = time.monotonic() + self.TOP_UP_FOR

            def more():
                # rows committed since the claim (their NOTIFY set the wake): claimed in this same
                # transaction (ours are no longer pending to it), sent while the confirms come back;
                # for TOP_UP_FOR seconds at most, so that the batch commits and its rows show as sent
                if not self.wake.is_set() or len(rows) >= self.batch or time.monotonic() > until:
                    return []
                self.wake.clear()
                cur.execute(self._claim_sql, {**self._claim_sql_params, **self._claim_params(self.batch - len(rows))})
                return cur.fetchall()

            n = self._publish(rows, lambda: raw.execute("ROLLBACK"), lambda ids: cur.execute(
                "UPDATE outbox SET unroutable = true WHERE event_id = ANY(%s)", [ids]),
                more=more if self.streaming else None)
            raw.execute("COMMIT")
        return n

    def _publish(self, rows, rollback, mark_unroutable, more=None) -> int:
        """Publish the claimed rows in id order and wait for every confirm; on failure roll the claim
        back (the rows stay pending), note the error on them and raise. `more()`, if given, claims
        further rows in the same transaction while the confirms are outstanding (the bus sends them
        at once, after the others, and waits for their confirms too): they are added to `rows`."""
        if not rows:
            return 0
        rows.sort(key=lambda r: r.id)  # RETURNING's order is not the subquery's

        def messages(batch):
            return [OutgoingMessage(r.event_id, r.event_type, r.envelope.encode()) for r in batch]

        def top_up():
            extra = sorted(more(), key=lambda r: r.id)
            rows.extend(extra)
            return messages(extra)

        try:
            with tracing.relay_span(self.rt, rows), \
                    (self.rt.bus.topping_up(top_up) if more else contextlib.nullcontext()):
                unroutable = self.rt.bus.publish(messages(rows))
        except BusError as exc:
            rollback()
            self._record_failure([r.id for r in rows], str(exc))
            raise
        if unroutable:
            mark_unroutable(list(unroutable))
            metrics.EVENTS_UNROUTABLE.labels(self.rt.name).inc(len(unroutable))
            log.warning("events published with no queue bound", extra={"count": len(unroutable)})
        return len(rows)

    def _leader(self):
        """PostgreSQL: the psycopg connection of this relay if it holds the service's relay lock,
        else None. One relay at a time per service keeps the commit order on the wire. The lock is
        session-level: it stays with the connection until `close()` or until the session ends (a
        killed backend, a restarted server), whatever happens to the transactions on it. A relay
        that finds it taken stands by and tries again after STANDBY_RETRY seconds."""
        if self._conn is not None:
            return self._conn.connection.driver_connection
        now = time.monotonic()
        if now < self._retry_at:
            return None
        conn = self.rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = conn.execute(select(func.pg_try_advisory_lock(self._lock_key))).scalar_one()
        except BaseException:
            _discard(conn)
            raise
        if not held:
            conn.close()  # back to the pool (its isolation level reset): no lock on it
            self._retry_at = now + self.STANDBY_RETRY
            return None
        self._conn = conn
        return conn.connection.driver_connection

    @property
    def active(self) -> bool:
        """PostgreSQL: whether this relay holds the lock (as far as it knows)."""
        return self._conn is not None

    def close(self) -> None:
        """Let the lock go: the connection is closed, not returned to the pool (its session, and the
        lock with it, end). The next `run_once` tries the lock again."""
        conn, self._conn = self._conn, None
        self._retry_at = 0.0
        if conn is not None:
            _discard(conn)

    def _record_failure(self, ids, error):
        ob = self.rt.outbox
        try:
            with self.rt.engine.begin() as conn:
                conn.execute(update(ob).where(ob.c.id.in_(ids)).values(attempts=ob.c.attempts + 1, last_error=error[:2000]))
        except Exception:  # pragma: no cover - the database is down too; the rows are still pending
            log.exception("could not record relay failure")

    def drain(self) -> int:
        """Publish every pending row (0 if another relay holds the lock), then let the lock go."""
        total = 0
        try:
            while (n := self.run_once()):
                total += n
        finally:
            self.close()
        return total

    def run(self, stop: threading.Event) -> None:
        wake = self.rt.outbox_wake
        self.streaming = True
        if self.rt.is_postgres:
            threading.Thread(target=self._listen, args=(stop,), name="outbox-listen", daemon=True).start()
        poll = self.rt.settings.relay_poll_ms / 1000
        # SQLite has no NOTIFY: rows other processes commit are seen by polling (a lock-free check,
        # see run_once). After IDLE_AFTER seconds with nothing to publish the poll slows to
        # IDLE_POLL (a commit in this process still wakes it at once), the first row makes it fast.
        idle_poll = max(poll, self.IDLE_POLL) if self._sqlite else poll
        active_at = time.monotonic()
        backoff = 0.2
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    n = self.run_once()
                    backoff = 0.2
                except BusError as exc:
                    log.warning("relay cannot publish, will retry", extra={"error": str(exc), "retry_in": backoff})
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                except Exception:
                    log.exception("relay error")
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                now = time.monotonic()
                if n:
                    active_at = now
                if n < self.batch:
                    pause = idle_poll if now - active_at > self.IDLE_AFTER else poll
                    if self.rt.is_postgres and self._conn is None:  # standing by: try the lock again in time
                        pause = min(pause, max(0.0, self._retry_at - now))
                    self._sleep(stop, pause)
        finally:
            self.close()

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """Until new rows are committed (wake), the poll interval passes, or the worker stops."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self.rt.outbox_wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.rt.outbox_wake.wait(min(left, 0.5))

    def _listen(self, stop: threading.Event) -> None:
        """Turn PostgreSQL NOTIFYs from any process's commit into a wake-up of this relay."""
        import psycopg
        url = self.rt.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.rt.notify_channel}"')
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.rt.outbox_wake.set()
            except psycopg.Error:
                stop.wait(1.0)


def _discard(conn) -> None:
    """Close a connection for good (its PostgreSQL session ends, and any lock it held)."""
    try:
        conn.invalidate()
    except Exception:  # pragma: no cover - already broken
        pass
    finally:
        conn.close()
