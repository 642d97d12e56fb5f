"""The relay's own CPU per batch, now against before bench/TUNING.md item 27 (not part of `make bench`):
the advisory lock and the claim built once and sent as the driver's SQL, against the lock's
`select(func.…)` built every cycle and both statements through SQLAlchemy's compiled cache.

    .venv/bin/python bench/_relay_cycle.py [rows per batch, 2] [batches per variant, 800]

A demo service's runtime on a fresh PostgreSQL database (its outbox with the migrations' NOTIFY
trigger). Each batch: one unit of work emits `rows` events and commits, then `Relay.run_once`
claims and "publishes" them, with the bus's publish replaced by a no-op, so the figure is the
relay's Python and database work without the broker. The two variants alternate batch by batch
(the other first every other batch) after 50 warm-up batches each; prints the median thread CPU
of `run_once` per batch."""
from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Integer, bindparam, func, select, update

import _common as C  # this file's folder is on sys.path (python runs it as a script)
from crm_shared.bus import OutgoingMessage
from crm_shared.migrations import create_outbox_notify_trigger
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, make_demo_service


class BeforeItem27Relay(Relay):
    """`Relay.run_once` as it was before item 27 (PostgreSQL path; publishing and its error handling
    as now)."""

    def __init__(self, runtime):
        super().__init__(runtime)
        ob = runtime.outbox
        pending = (select(ob.c.id).where(ob.c.published_at.is_(None)).order_by(ob.c.id)
                   .limit(bindparam("n", type_=Integer)).scalar_subquery())
        self._claim_before = (update(ob).where(ob.c.id.in_(pending))
                              .values(published_at=bindparam("now", type_=ob.c.published_at.type),
                                      attempts=ob.c.attempts + 1)
                              .returning(ob.c.id, ob.c.event_id, ob.c.event_type, ob.c.envelope))

    def run_once(self) -> int:
        with self.rt.engine.begin() as conn:
            if not conn.execute(select(func.pg_try_advisory_xact_lock(self._lock_key))).scalar_one():
                return 0
            rows = conn.execute(self._claim_before, {"now": self.rt.clock.now(), "n": self.batch}).all()
            if not rows:
                return 0
            rows.sort(key=lambda r: r.id)
            self.rt.bus.publish([OutgoingMessage(r.event_id, r.event_type, r.envelope.encode()) for r in rows])
        return len(rows)


def main(rows: int, batches: int) -> None:
    with C.postgres_database("bench_relay_cycle") as url, tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(make_demo_service("a", handles=()), demo_settings("a", url, f"sqlite:///{tmp}/bus.db", "t"))
        try:
            rt.definition.metadata.create_all(rt.engine)
            with rt.engine.begin() as conn:
                create_outbox_notify_trigger(Operations(MigrationContext.configure(conn)), rt.name)
            rt.bus.publish = lambda messages: set()  # no broker: the relay's own work only
            relays = {"before item 27": BeforeItem27Relay(rt), "now": Relay(rt)}
            counter = itertools.count()

            def batch(relay) -> float:
                with rt.uow() as uow:
                    for _ in range(rows):
                        n = next(counter)
                        uow.emit("lead.created", {"lead_id": f"L{n}", "status": "new", "name": f"n{n}"},
                                 aggregate_type="lead", aggregate_id=n)
                    uow.commit()
                c0 = time.thread_time()
                published = relay.run_once()
                c1 = time.thread_time()
                assert published == rows, published
                return (c1 - c0) * 1000

            for _ in range(50):
                for relay in relays.values():
                    batch(relay)
            got: dict = {name: [] for name in relays}
            for i in range(batches):
                for name in (list(relays) if i % 2 else list(relays)[::-1]):
                    got[name].append(batch(relays[name]))
            med = {name: statistics.median(v) for name, v in got.items()}
            for name, m in med.items():
                print(f"relay {name}: run_once thread CPU median {m:.3f} ms per batch of {rows} "
                      f"({batches} batches, publish a no-op)")
            print(f"now / before: {med['now'] / med['before item 27']:.3f}")
        finally:
            rt.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2, int(sys.argv[2]) if len(sys.argv) > 2 else 800)
