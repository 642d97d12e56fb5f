"""Notify's consumer with the recipients read once per batch against once per event (bench/TUNING.md
item 27; not part of `make bench`).

    .venv/bin/python bench/_notify_people.py [events per batch, 20]

`Dispatcher.handle_batch` of `lead.assigned` events for 4 reps (an inbox item and an email each) on
a fresh PostgreSQL database, in process; 60 batches per variant after 10 warm-up batches, the two
variants alternating batch by batch (the other first every other batch). "Per event" replaces
`notify.handlers._people` with a function that returns an empty cache every time, i.e. the
Planner's own cache, as before item 27. Prints the medians of thread CPU and wall time per event."""
from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

import _common as C  # this file's folder is on sys.path (python runs it as a script)
from crm_shared.bus import Delivery
from crm_shared.clock import FrozenClock
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.migrations import upgrade
from crm_shared.testing import demo_settings
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token
from notify import handlers
from notify.app import create_app
from notify.service import SERVICE


def main(batch_size: int) -> None:
    with C.postgres_database("h_notify") as url, tempfile.TemporaryDirectory() as tmp:
        upgrade(SERVICE, url)
        clock = FrozenClock(datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc))
        app = create_app(demo_settings("notify", url, f"sqlite:///{tmp}/bus.db", "n", extra={}), clock, testing=True)
        rt, client = runtime_of(app), app.test_client()
        admin = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "admin1", "admin1", ["admin"], "t", "zh-CN")}
        for i in range(4):
            r = client.put(f"/v1/recipients/rep{i}", json={"email": f"rep{i}@example.com"}, headers=admin)
            assert r.status_code == 200, r.json
        dispatcher = Dispatcher(rt, SERVICE.handlers)
        per_batch = handlers._people
        variants = {"per event (before)": lambda session: {}, "per batch (now)": per_batch}
        counter = itertools.count(1)

        def one_batch() -> tuple[float, float]:
            envs = []
            for _ in range(batch_size):
                n = next(counter)
                envs.append(Envelope(type="lead.assigned", producer="bench", occurred_at=clock.now().isoformat(),
                                     payload={"lead_id": str(n), "owner_id": f"rep{n % 4}", "reason": "auto",
                                              "name": f"客户{n}"}))
            deliveries = [Delivery(e.id, e.type, e.to_json().encode(), 0) for e in envs]
            c0, w0 = time.thread_time(), time.perf_counter()
            decisions = dispatcher.handle_batch(deliveries)
            c1, w1 = time.thread_time(), time.perf_counter()
            assert all(d[0].value == "ack" for d in decisions), decisions
            return (c1 - c0) * 1000 / batch_size, (w1 - w0) * 1000 / batch_size

        for _ in range(10):
            one_batch()
        got: dict = {name: [] for name in variants}
        try:
            for r in range(60):
                for name in (list(variants) if r % 2 else list(variants)[::-1]):
                    handlers._people = variants[name]
                    got[name].append(one_batch())
        finally:
            handlers._people = per_batch
        for name, v in got.items():
            print(f"recipients read {name}: thread CPU {statistics.median(x[0] for x in v):.3f} ms/event, wall "
                  f"{statistics.median(x[1] for x in v):.3f} ms/event ({len(v)} batches of {batch_size}, 4 reps)")
        rt.close()

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
