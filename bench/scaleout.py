"""Scale-out: one or two worker processes of one service consume one RabbitMQ queue (PostgreSQL
inbox); events/s and a check that every event was applied exactly once.

    .venv/bin/python bench/scaleout.py      # prints the Markdown section

The workers are the demo service's (`python -m crm_shared.testing worker …`: the real `Worker`, with
its consumer, relay and scheduler; the handler inserts a row into `applied`, a table without a
unique key, so a duplicate effect would show as a second row). The queue is filled first, then the
workers start; rate = events / (last − first `processed_at` in the inbox), so process start-up is
not counted. 1 and 2 workers in turn, `BENCH_SCALE_ROUNDS` rounds of `BENCH_SCALE_EVENTS` events."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from crm_shared.bus import OutgoingMessage, connect  # noqa: E402
from crm_shared.events import Envelope  # noqa: E402
from crm_shared.testing import delete_amqp_namespace, make_demo_service  # noqa: E402

TITLE = "Scale-out: two worker processes on one queue"
EVENTS = int(os.environ.get("BENCH_SCALE_EVENTS", "3000"))
ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "2"))
DELAYS = (100, 200, 300)  # the demo settings' retry delays (their queues are declared and removed)


def one_run(workers: int, token: str) -> dict:
    ns = f"bench{token}w{workers}{uuid.uuid4().hex[:4]}"
    d = make_demo_service("b")
    with C.postgres_database() as url:
        engine = create_engine(url)
        d.metadata.create_all(engine)
        bus = connect(C.AMQP_URL, ns)
        procs = []
        try:
            bus.declare_consumer("b", ["lead.created"], DELAYS)
            for start in range(0, EVENTS, 2000):
                msgs = []
                for i in range(start, min(EVENTS, start + 2000)):
                    env = Envelope(type="lead.created", payload={"lead_id": str(i), "status": "new", "name": f"n{i}"},
                                   producer="a")
                    msgs.append(OutgoingMessage(env.id, env.type, env.to_json().encode()))
                bus.publish(msgs)
            env_vars = dict(os.environ, LOG_LEVEL="WARNING")
            procs = [subprocess.Popen([sys.executable, "-m", "crm_shared.testing", "worker", "b", url, C.AMQP_URL, ns],
                                      env=env_vars, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(workers)]
            applied, inbox = d.metadata.tables["applied"], d.metadata.tables["processed_events"]
            deadline = C.Deadline(300)
            while not deadline.over():
                with engine.connect() as c:
                    if c.execute(select(func.count()).select_from(inbox)).scalar_one() >= EVENTS:
                        break
                time.sleep(0.2)
            with engine.connect() as c:
                first, last, n = c.execute(select(func.min(inbox.c.processed_at), func.max(inbox.c.processed_at),
                                                  func.count()).select_from(inbox)).one()
                rows = c.execute(select(func.count()).select_from(applied)).scalar_one()
                # the rows of one batch share their processed_at (one clock reading per batch)
                batches = c.execute(select(func.count(func.distinct(inbox.c.processed_at)))).scalar_one()
                dups = c.execute(text("SELECT count(*) FROM (SELECT event_id FROM applied GROUP BY event_id "
                                      "HAVING count(*) > 1) d")).scalar_one()
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            bus.close()
            engine.dispose()
            delete_amqp_namespace(ns, ["b"], DELAYS)
    seconds = (last - first).total_seconds() if n > 1 else float("nan")
    return {"workers": workers, "n": n, "rows": rows, "dups": dups, "batches": batches, "seconds": seconds, "rate": C.rate(n - 1, seconds)}


def run() -> str:
    token = C.new_token()
    runs = []
    for _ in range(ROUNDS):
        for w in (1, 2):
            runs.append(one_run(w, token))
    rows = []
    for r in runs:
        ok = r["n"] == EVENTS and r["rows"] == EVENTS and r["dups"] == 0
        rows.append([r["workers"], f"{r['n']:,}", f"{r['rows']:,}", r["dups"], f"{r['n'] / max(1, r['batches']):.1f}",
                     f"{r['seconds']:.2f}", C.fmt_rate(r["rate"]), "yes" if ok else "**NO**"])
    one = [r["rate"] for r in runs if r["workers"] == 1]
    two = [r["rate"] for r in runs if r["workers"] == 2]
    ratio = (sum(two) / len(two)) / (sum(one) / len(one))
    verdict = "meets" if ratio >= 1.6 else "**misses**"
    out = [f"{EVENTS:,} `lead.created` events waiting in the demo service's quorum queue, then 1 or 2 worker "
           "processes (`python -m crm_shared.testing worker`, default prefetch and batch) on PostgreSQL; in turn, "
           f"{ROUNDS} rounds.", "",
           C.md_table(["Workers", "Events in the inbox", "Effect rows", "Events applied twice", "Events per transaction",
                       "Seconds", "Events/s",
                       "Each applied exactly once"], rows), "",
           f"**Two workers: {ratio:.2f}x one** (mean of the runs), against a goal of ≥ 1.6x: this {verdict} it. "
           f"The machine has {os.cpu_count()} cores, shared with PostgreSQL, RabbitMQ and whatever else runs "
           f"(load average now {' / '.join(f'{x:.2f}' for x in os.getloadavg())}): a second worker can only add "
           "what the cores have spare."]
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
