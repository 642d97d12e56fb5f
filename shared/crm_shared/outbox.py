"""The outbox relay: publishes committed events in commit order, waits for the broker's confirms,
then marks them sent. With the broker down nothing is lost: rows stay pending and go out when it is
back. It wakes on new rows (in-process event, PostgreSQL LISTEN/NOTIFY) rather than a long timer."""
from __future__ import annotations

import logging
import threading
import time
import zlib

from sqlalchemy import Integer, bindparam, func, select, text, update

from . import metrics, tracing
from .bus import BusError, OutgoingMessage

log = logging.getLogger(__name__)


class Relay:
    IDLE_AFTER = 1.0   # s with nothing published before a relay on SQLite polls more slowly …
    IDLE_POLL = 0.05   # … at this period (s)

    def __init__(self, runtime, batch: int | None = None, keep_connection: bool = False):
        self.rt = runtime
        self._keep = keep_connection  # `run` keeps its connection from batch to batch
        self._kept = None
        self._claim_sql = None
        self.batch = batch or runtime.settings.relay_batch
        self._lock_key = zlib.crc32(f"outbox:{runtime.name}".encode())
        ob = runtime.outbox
        pending = (select(ob.c.id).where(ob.c.published_at.is_(None)).order_by(ob.c.id)
                   .limit(bindparam("n", type_=Integer)).scalar_subquery())
        self._claim = (update(ob).where(ob.c.id.in_(pending))
                       .values(published_at=bindparam("now", type_=ob.c.published_at.type), attempts=ob.c.attempts + 1)
                       .returning(ob.c.id, ob.c.event_id, ob.c.event_type, ob.c.envelope))

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
        """Publish one batch. Returns how many rows were published (0: nothing pending).

        The oldest pending rows are claimed and marked sent in one statement (`UPDATE … WHERE id IN
        (SELECT … ORDER BY id LIMIT n) RETURNING …`) inside this batch's transaction, then published;
        the transaction commits only once the broker has confirmed every message, so no other reader
        sees a row as sent before its confirm, and if publishing fails the rollback leaves every row
        of the batch pending.

        On PostgreSQL the transaction-level advisory lock (one relay at a time per service, which
        keeps the commit order on the wire) and the claim go in one round trip with the BEGIN
        (`_pg_claim`), and the COMMIT in a second one: two round trips a batch.

        On SQLite, `engine.begin()` takes the write lock (`BEGIN IMMEDIATE`, see `db.make_engine`):
        an empty poll first asks, without any lock, whether a row is pending at all."""
        if self.rt.is_postgres:
            return self._run_once_pg()
        if self._sqlite and not self._pending():
            return 0
        with self.rt.engine.begin() as conn:
            rows = conn.execute(self._claim, {"now": self.rt.clock.now(), "n": self.batch}).all()
            if not rows:
                return 0
            rows.sort(key=lambda r: r.id)  # RETURNING's order is not the subquery's
            unroutable = self._publish(rows, conn.rollback)
            if unroutable:
                ob = self.rt.outbox
                conn.execute(update(ob).where(ob.c.event_id.in_(list(unroutable))).values(unroutable=True))
        return self._published(rows, unroutable)

    def _publish(self, rows, rollback) -> set[str]:
        msgs = [OutgoingMessage(r.event_id, r.event_type, r.envelope.encode()) for r in rows]
        try:
            with tracing.relay_span(self.rt, rows):  # no-op unless tracing is on
                return self.rt.bus.publish(msgs)
        except BusError as exc:
            rollback()
            self._record_failure([r.id for r in rows], str(exc))
            raise

    def _published(self, rows, unroutable) -> int:
        if unroutable:
            metrics.EVENTS_UNROUTABLE.labels(self.rt.name).inc(len(unroutable))
            log.warning("events published with no queue bound", extra={"count": len(unroutable)})
        metrics.EVENTS_PUBLISHED.labels(self.rt.name).inc(len(rows))
        return len(rows)

    # -- PostgreSQL: two round trips a batch --------------------------------------------------------
    def _pg_sql(self):
        if self._claim_sql is None:
            dialect = self.rt.engine.dialect
            ob = self.rt.outbox
            # claim only if this backend holds the relay's lock: the lock is taken by the statement
            # before, so this statement's snapshot (READ COMMITTED: one per statement) is taken after
            # the lock, and sees every batch an earlier holder committed as sent. `pg_locks` is a live
            # view, not an MVCC one. An advisory lock on one bigint key k shows as classid = k >> 32,
            # objid = k & 0xffffffff, objsubid = 1.
            held = text("EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                        "AND granted AND classid = 0 AND objsubid = 1 AND objid = CAST(CAST(:key AS bigint) AS oid))")
            claim = self._claim.where(held).where(ob.c.published_at.is_(None))
            compiled = claim.compile(dialect=dialect)
            self._claim_sql = (compiled.string, dict(compiled.params))
            self._unroutable_sql = f"UPDATE {dialect.identifier_preparer.format_table(ob)} SET unroutable = true " \
                                   "WHERE event_id = ANY(%(ids)s)"
        return self._claim_sql

    def _connection(self):
        """The relay's connection: kept from batch to batch while `run` runs (no pool checkout, no
        pre-ping), else a pooled one per batch. In autocommit mode, so that the batch's BEGIN is sent
        with its first statements (as `inbox.Dispatcher._connect`); SQLAlchemy undoes the mode when
        the connection goes back to the pool."""
        if self._kept is not None:
            return self._kept, False
        conn = self.rt.engine.connect()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        if self._keep:
            self._kept = conn
            return conn, False
        return conn, True

    def close(self) -> None:
        conn, self._kept = self._kept, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - already broken
                pass

    def _pg_claim(self, driver, sql, params):
        """BEGIN, the lock and the claim in one round trip (`fetchall` syncs the pipeline)."""
        from psycopg.rows import namedtuple_row
        with driver.pipeline():
            driver.execute("BEGIN")
            driver.execute("SELECT pg_try_advisory_xact_lock(%(key)s)", {"key": self._lock_key})
            cur = driver.cursor(row_factory=namedtuple_row)
            cur.execute(sql, dict(params, now=self.rt.clock.now(), n=self.batch, key=self._lock_key))
            return cur.fetchall()

    def _run_once_pg(self) -> int:
        import psycopg
        from psycopg.pq import TransactionStatus
        sql, params = self._pg_sql()
        kept = self._kept is not None
        conn, release = self._connection()
        driver = None
        try:
            driver = conn.connection.driver_connection
            try:
                rows = self._pg_claim(driver, sql, params)
            except psycopg.OperationalError:
                if not (kept and (driver.closed or driver.broken)):
                    raise
                # the connection kept since the last batch is gone (database restarted, network cut):
                # once more on a new one, as the pool's pre-ping would have done; nothing was published
                log.info("database connection lost since the last batch, relaying on a new one")
                conn.invalidate()
                self._kept = None
                conn.close()
                conn, release = self._connection()
                driver = conn.connection.driver_connection
                rows = self._pg_claim(driver, sql, params)
            if not rows:
                driver.execute("ROLLBACK")  # nothing claimed (or the lock is another relay's)
                return 0
            rows.sort(key=lambda r: r.id)  # RETURNING's order is not the subquery's
            unroutable = self._publish(rows, lambda: driver.execute("ROLLBACK"))
            if unroutable:
                driver.execute(self._unroutable_sql, {"ids": list(unroutable)})
            driver.execute("COMMIT")
        except BaseException as exc:
            if driver is not None and not driver.closed and not driver.broken \
                    and driver.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                try:
                    driver.execute("ROLLBACK")
                except psycopg.Error:
                    pass
            if driver is None or driver.closed or driver.broken or driver.info.transaction_status != TransactionStatus.IDLE:
                # lost, or in a state the next batch cannot start from: a new connection next time
                if not release:
                    self._kept, release = None, True
                conn.invalidate()
            if isinstance(exc, psycopg.Error):
                # wrapped as SQLAlchemy would (OperationalError…), for the callers' logs and checks
                from sqlalchemy.exc import DBAPIError
                raise DBAPIError.instance(None, None, exc, psycopg.Error, dialect=conn.dialect) from exc
            raise
        finally:
            if release:
                conn.close()
        return self._published(rows, unroutable)

    def _record_failure(self, ids, error):
        ob = self.rt.outbox
        try:
            with self.rt.engine.begin() as conn:
                conn.execute(update(ob).where(ob.c.id.in_(ids)).values(attempts=ob.c.attempts + 1, last_error=error[:2000]))
        except Exception:  # pragma: no cover - the database is down too; the rows are still pending
            log.exception("could not record relay failure")

    def drain(self) -> int:
        total = 0
        while (n := self.run_once()):
            total += n
        return total

    def run(self, stop: threading.Event) -> None:
        wake = self.rt.outbox_wake
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
            self._loop(stop, wake, poll, idle_poll, active_at, backoff)
        finally:
            self.close()

    def _loop(self, stop, wake, poll, idle_poll, active_at, backoff) -> None:
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
                self._sleep(stop, idle_poll if now - active_at > self.IDLE_AFTER else poll)

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
