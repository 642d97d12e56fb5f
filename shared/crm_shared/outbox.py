"""The outbox relay: publishes committed events in commit order, waits for the broker's confirms,
then marks them sent. With the broker down nothing is lost: rows stay pending and go out when it is
back. It wakes on new rows (in-process event, PostgreSQL LISTEN/NOTIFY) rather than a long timer."""
from __future__ import annotations

import logging
import threading
import time
import zlib

from sqlalchemy import BigInteger, Integer, bindparam, func, literal_column, select, update

from . import metrics, tracing
from .bus import BusError, OutgoingMessage
from .db import driver_execute

log = logging.getLogger(__name__)


class Relay:
    IDLE_AFTER = 1.0   # s with nothing published before a relay on SQLite polls more slowly …
    IDLE_POLL = 0.05   # … at this period (s)

    def __init__(self, runtime, batch: int | None = None):
        self.rt = runtime
        self.batch = batch or runtime.settings.relay_batch
        self._lock_key = zlib.crc32(f"outbox:{runtime.name}".encode())
        ob = runtime.outbox
        pending = (select(ob.c.id).where(ob.c.published_at.is_(None)).order_by(ob.c.id)
                   .limit(bindparam("n", type_=Integer)).scalar_subquery())
        self._claim = (update(ob).where(ob.c.id.in_(pending))
                       .values(published_at=bindparam("now", type_=ob.c.published_at.type),
                               attempts=ob.c.attempts + literal_column("1", Integer))  # (no parameter: see db.driver_execute)
                       .returning(ob.c.id, ob.c.event_id, ob.c.event_type, ob.c.envelope))
        # built once, like the claim: building `func.…(…)` and its cache key every cycle was about a
        # tenth of the relay thread's CPU at 100 events/s (bench/TUNING.md item 27)
        self._lock = select(func.pg_try_advisory_xact_lock(bindparam("key", type_=BigInteger)))

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
        of the batch pending. One round trip fewer per batch than a SELECT, then an UPDATE.

        On SQLite, `engine.begin()` takes the write lock (`BEGIN IMMEDIATE`, see `db.make_engine`):
        an empty poll first asks, without any lock, whether a row is pending at all."""
        if self._sqlite and not self._pending():
            return 0
        with self.rt.engine.begin() as conn:
            if self.rt.is_postgres:
                # one relay at a time per service keeps the commit order on the wire
                if not driver_execute(conn, self._lock, {"key": self._lock_key}).scalar_one():
                    return 0
            # (PostgreSQL: the driver's SQL, compiled once; SQLite converts the DateTime: as usual)
            rows = driver_execute(conn, self._claim, {"now": self.rt.clock.now(), "n": self.batch}).all()
            if not rows:
                return 0
            rows.sort(key=lambda r: r.id)  # RETURNING's order is not the subquery's
            msgs = [OutgoingMessage(r.event_id, r.event_type, r.envelope.encode()) for r in rows]
            try:
                with tracing.relay_span(self.rt, rows):  # no-op unless tracing is on
                    unroutable = self.rt.bus.publish(msgs)
            except BusError as exc:
                conn.rollback()
                self._record_failure([r.id for r in rows], str(exc))
                raise
            if unroutable:
                ob = self.rt.outbox
                conn.execute(update(ob).where(ob.c.event_id.in_(list(unroutable))).values(unroutable=True))
                metrics.EVENTS_UNROUTABLE.labels(self.rt.name).inc(len(unroutable))
                log.warning("events published with no queue bound", extra={"count": len(unroutable)})
        metrics.EVENTS_PUBLISHED.labels(self.rt.name).inc(len(rows))
        return len(rows)

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
