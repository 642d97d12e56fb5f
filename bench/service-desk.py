"""Service-desk benchmarks on PostgreSQL: ticket creation with routing under 20 concurrent
clients (through the Flask app in-process: JSON parsing, validation, routing, SLA timers,
outbox rows, one transaction per ticket), and the SLA scan over 1,000 and 100,000 open tickets
(the same number of timers due in both), with the plans of its queries (EXPLAIN ANALYZE).

    .venv/bin/python bench/service-desk.py      # prints the Markdown section

Sizes: BENCH_SD_CLIENTS (20), BENCH_SD_TICKETS (2000 in all), BENCH_SD_OPEN (100000) against
BENCH_SD_OPEN_SMALL (1000), BENCH_SD_DUE (500 timers reaching 80% in the timed scan, in both)."""
from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from crm_shared.clock import FrozenClock  # noqa: E402
from crm_shared.config import DEV_JWT_SECRET  # noqa: E402
from crm_shared.migrations import upgrade  # noqa: E402
from crm_shared.testing import demo_settings  # noqa: E402
from crm_shared.web.app import runtime_of  # noqa: E402
from crm_shared.web.auth import dev_token  # noqa: E402

TITLE = "Service desk: ticket creation with routing, SLA scan"
CLIENTS = int(os.environ.get("BENCH_SD_CLIENTS", "20"))
TICKETS = int(os.environ.get("BENCH_SD_TICKETS", "2000"))
OPEN = int(os.environ.get("BENCH_SD_OPEN", "100000"))
SMALL = int(os.environ.get("BENCH_SD_OPEN_SMALL", "1000"))
DUE = int(os.environ.get("BENCH_SD_DUE", "500"))
START = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(timezone.utc)


def _app(url, tmp):
    from service_desk.app import create_app
    from service_desk.service import SERVICE
    upgrade(SERVICE, url)
    clock = FrozenClock(START)
    os.environ.setdefault("DB_POOL_SIZE", str(CLIENTS + 2))
    app = create_app(demo_settings("service-desk", url, f"sqlite:///{tmp}/bus.db", "bench"), clock=clock, testing=True)
    return app, clock


def bench_creation(url, tmp) -> list:
    app, _ = _app(url, tmp)
    rt = runtime_of(app)
    auth = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "sup", "sup", ["service_supervisor"])}
    c = app.test_client()
    for i in range(10):  # 10 agents, 50 tickets each at most: the rest queue up
        r = c.post("/v1/agents", headers=auth, json={"user_id": f"a{i}", "skills": ["complaints", "incidents"],
                                                     "max_open": 50})
        assert r.status_code == 201, r.json
    per_client = TICKETS // CLIENTS
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    failures = []

    def client(n):
        cl = app.test_client()
        mine = []
        barrier.wait()
        for i in range(per_client):
            body = {"customer_id": f"c{n}-{i}", "type": "incident" if i % 2 else "complaint",
                    "priority": ("low", "normal", "high", "urgent")[i % 4], "subject": "bench",
                    "description": "x" * 200, "channel": "web"}
            t0 = time.perf_counter()
            r = cl.post("/v1/tickets", headers=auth, json=body)
            mine.append(time.perf_counter() - t0)
            if r.status_code != 201:
                failures.append(r.status_code)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    from service_desk.models import agents, tickets
    with rt.engine.connect() as conn:
        over = conn.execute(select(func.count()).select_from(agents).where(agents.c.open_count > agents.c.max_open)).scalar_one()
        assigned = conn.execute(select(func.count()).select_from(tickets).where(tickets.c.assignee_id.is_not(None))).scalar_one()
    rt.close()
    n = per_client * CLIENTS
    return [[f"create ticket + route, {CLIENTS} concurrent clients", f"{n:,}", C.fmt_rate(C.rate(n, wall)),
             C.fmt_ms(C.percentile(latencies, 50) * 1000), C.fmt_ms(C.percentile(latencies, 95) * 1000),
             C.fmt_ms(C.percentile(latencies, 99) * 1000),
             f"{len(failures)} failed; {assigned} assigned (capacity 500), agents over max_open: {over}"]]


def _explain(conn, stmt, analyze=True) -> str:
    """The plan of a SQLAlchemy statement on PostgreSQL (parameters inlined)."""
    from sqlalchemy.dialects import postgresql
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    opts = "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF" if analyze else "COSTS OFF"
    plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN ({opts}) {sql}"))
    # a list of 500 ids, shortened for reading
    return re.sub(r"'\{(\d+),(\d+),[\d,]*,(\d+)\}'", lambda m: f"'{{{m[1]},{m[2]},…,{m[3]}}}'", plan)


def _scan_plans(rt, now) -> dict:
    """EXPLAIN ANALYZE of the scan's queries: the batch read (`due_timers`) and the conditional
    update that claims a warning (`_claim`), inside a transaction that is rolled back."""
    from sqlalchemy import update
    from service_desk.domain import escalation
    from service_desk.models import ticket_slas
    with rt.engine.connect() as conn:
        tx = conn.begin()
        read = _explain(conn, _due_timers_statement(now, 500))
        ids = [r[0] for r in conn.execute(select(ticket_slas.c.id).where(ticket_slas.c.next_check_at <= now)
                                          .order_by(ticket_slas.c.next_check_at, ticket_slas.c.id).limit(500))]
        claim = _explain(conn, update(ticket_slas).where(ticket_slas.c.id.in_(ids or [0]),
                                                         ticket_slas.c.warned_at.is_(None), *escalation.STILL_RUNNING)
                         .values(warned_at=now, next_check_at=ticket_slas.c.due_at).returning(ticket_slas.c.id))
        tx.rollback()
    return {"read": read, "claim": claim}


def _due_timers_statement(now, limit):
    """The statement `escalation.due_timers` executes, captured by running it on a recording session."""
    from service_desk.domain import escalation
    captured = []

    class Recorder:
        def execute(self, stmt):
            captured.append(stmt)

            class R:
                def mappings(self):
                    return self

                def all(self):
                    return []
            return R()
    escalation.due_timers(Recorder(), now, limit)
    return captured[0]


def bench_scan(url, tmp, n_open: int, due: int) -> tuple[list, dict]:
    from service_desk import jobs
    from service_desk.models import ticket_slas, tickets
    app, clock = _app(url, tmp)
    rt = runtime_of(app)
    # n_open open tickets filed over the past working hours, each with two timers; `due` of them reach
    # their warning point when the clock moves 1 minute on
    t0 = time.perf_counter()
    with rt.engine.begin() as conn:
        batch = 10_000
        for start in range(0, n_open, batch):
            rows = []
            for i in range(start, min(n_open, start + batch)):
                created = START - timedelta(minutes=(i % 400))
                rows.append(dict(id=i + 1, customer_id=f"c{i}", type="incident", priority="normal", queue="incidents",
                                 status="open", subject="bench", description="", channel="web", rank=12,
                                 assignee_id=f"a{i % 50}", created_at=created, updated_at=created, held_seconds=0.0))
            conn.execute(insert(tickets), rows)
            slas = []
            for r in rows:
                i = r["id"] - 1
                due_in = timedelta(minutes=1) if i < due else timedelta(days=2 + i % 5)
                warn = START + due_in
                for target, cyc in (("first_response", 0), ("resolution", 0)):
                    w = warn if target == "first_response" else START + timedelta(days=6)
                    slas.append(dict(ticket_id=r["id"], target=target, cycle=cyc, minutes=480, started_at=r["created_at"],
                                     warn_at=w, due_at=w + timedelta(hours=2), running=True, next_check_at=w))
            conn.execute(insert(ticket_slas), slas)
    load = time.perf_counter() - t0
    with rt.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    times = []
    for _ in range(5):  # median of 5 scans with nothing due
        t0 = time.perf_counter()
        counts = jobs.sla_scan(rt)
        times.append(time.perf_counter() - t0)
        assert sum(counts.values()) == 0, counts
    idle = statistics.median(times)
    plans = {"idle": _scan_plans(rt, START)}
    clock.advance(minutes=1)
    plans["busy"] = _scan_plans(rt, START + timedelta(minutes=1))
    t0 = time.perf_counter()
    counts = jobs.sla_scan(rt)
    busy = time.perf_counter() - t0
    assert counts["ticket.sla_warning"] == due, counts
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        counts = jobs.sla_scan(rt)
        times.append(time.perf_counter() - t0)
        assert sum(counts.values()) == 0
    again = statistics.median(times)
    rt.close()
    return {"idle": idle, "busy": busy, "again": again, "load": load}, plans


def bench_scans(tmp) -> tuple[list, str]:
    res, plans = {}, {}
    for n in (SMALL, OPEN):
        with C.postgres_database("bench_sd") as url:
            res[n], plans[n] = bench_scan(url, tmp, n, DUE)
    s, b = res[SMALL], res[OPEN]
    growth = OPEN / SMALL
    rows = []
    for n in (SMALL, OPEN):
        r = res[n]
        rows.append([f"SLA scan, {n:,} open tickets ({2 * n:,} timers), nothing due", "median of 5 scans", "",
                     C.fmt_ms(r["idle"] * 1000), "", "", f"data loaded in {r['load']:.1f} s"])
    for n in (SMALL, OPEN):
        r = res[n]
        rows.append([f"SLA scan, {n:,} open tickets, {DUE:,} timers at 80%", f"{DUE:,} warnings",
                     C.fmt_rate(C.rate(DUE, r["busy"])), f"{r['busy']:.2f} s", "", "",
                     "one transaction per 500 timers; events written to the outbox"])
    for n in (SMALL, OPEN):
        rows.append([f"the same scan again, {n:,} open tickets (nothing new: exactly once)", "median of 3 scans", "",
                     C.fmt_ms(res[n]["again"] * 1000), "", "", ""])
    ratio_idle = b["idle"] / s["idle"]
    ratio_busy = b["busy"] / s["busy"]
    verdict = lambda r: "sub-linear (goal met)" if r < growth / 4 else "NOT sub-linear"  # noqa: E731
    text = [f"Scale: {OPEN:,} open tickets against {SMALL:,} ({growth:.0f}x the data): the scan with nothing due "
            f"takes {ratio_idle:.2f}x the time ({verdict(ratio_idle)}), the scan with {DUE:,} timers due "
            f"{ratio_busy:.2f}x ({verdict(ratio_busy)}). The goal is sub-linear growth (counted as met below "
            f"{growth / 4:.0f}x): the scan reads only the "
            "timers whose `next_check_at` has come, through the index `ix_ticket_slas_next_check_at`, and claims "
            "them by primary key; the plans below (EXPLAIN (ANALYZE), PostgreSQL) show no scan that grows with "
            "the open tickets.", ""]
    for n in (SMALL, OPEN):
        for when, label in (("idle", "nothing due"), ("busy", f"{DUE:,} due")):
            for q, what in (("read", "the batch read (`escalation.due_timers`, 500 a batch)"),
                            ("claim", "the claim of a warning batch (`escalation._claim`)")):
                text += [f"{n:,} open tickets, {label}: {what}", "", "```", plans[n][when][q], "```", ""]
    return rows, "\n".join(text)


def run() -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with C.postgres_database("bench_sd") as url:
            rows += bench_creation(url, tmp)
        scan_rows, plans = bench_scans(tmp)
        rows += scan_rows
    table = C.md_table(["what", "n", "throughput (/s)", "p50 ms / time", "p95 ms", "p99 ms", "notes"], rows)
    return (f"PostgreSQL on this machine; the Flask app in-process (test client, no HTTP server), "
            f"{CLIENTS} client threads, one SQLAlchemy pool of {CLIENTS + 2}.\n\n" + table + "\n\n" + plans + "\n")


if __name__ == "__main__":
    print(run())
