"""Embedded default: SQLite writers of several processes, queued by SQLite's busy handler (before) or
by crm_shared.sqlitelock's kernel lock (after), in turn in one run.

Each of PROCS processes runs THREADS threads; each thread runs, at a paced rate (RATE transactions/s
in all), a transaction shaped like an intake's: BEGIN IMMEDIATE, a read, three inserts and about a
millisecond of Python between them, COMMIT. Latency = from asking for the transaction to its COMMIT
returning. Sizes: BENCH_SQLW_RATE (200), BENCH_SQLW_SECONDS (6), BENCH_SQLW_ROUNDS (3),
BENCH_SQLW_PROCS (3), BENCH_SQLW_THREADS (4)."""
from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "shared"))

import _common as C  # noqa: E402

TITLE = "Embedded default: SQLite writers of several processes"
RATE = int(os.environ.get("BENCH_SQLW_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_SQLW_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_SQLW_ROUNDS", "3"))
PROCS = int(os.environ.get("BENCH_SQLW_PROCS", "3"))
THREADS = int(os.environ.get("BENCH_SQLW_THREADS", "4"))


def before_engine(url: str):
    """`crm_shared.db.make_engine` for SQLite as it was before bench/TUNING.md section 18: the same
    pragmas and BEGIN IMMEDIATE, waits left to SQLite's busy handler (busy_timeout 30 s)."""
    from sqlalchemy import create_engine, event
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def _process(url: str, before: bool, start_at: float, out):
    from sqlalchemy import text
    from crm_shared.db import make_engine
    engine = before_engine(url) if before else make_engine(url)
    lat: list[float] = []
    lock = threading.Lock()
    every = PROCS * THREADS / RATE

    def thread(k: int):
        mine = []
        i = 0
        time.sleep(max(0.0, start_at - time.time()) + k * every / THREADS)
        t0 = time.perf_counter()
        while (due := t0 + i * every) < t0 + SECONDS:
            i += 1
            if (d := due - time.perf_counter()) > 0:
                time.sleep(d)
            asked = time.perf_counter()
            with engine.begin() as c:
                c.execute(text("SELECT count(*) FROM leads WHERE phone = :p"), {"p": f"{os.getpid()}-{k}-{i}"})
                for _ in range(3):
                    c.execute(text("INSERT INTO leads(phone, body) VALUES (:p, :b)"),
                              {"p": f"{os.getpid()}-{k}-{i}", "b": "x" * 300})
                    sum(range(6000))  # the Python between the statements (validation, scoring, ...)
            mine.append((time.perf_counter() - asked) * 1000)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=thread, args=(k,)) for k in range(THREADS)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    engine.dispose()
    out.put(lat)


def _one(before: bool) -> dict:
    from sqlalchemy import create_engine, text
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/w.db"
        e = create_engine(url)
        with e.begin() as c:
            c.execute(text("PRAGMA journal_mode=WAL"))
            c.execute(text("CREATE TABLE leads (id INTEGER PRIMARY KEY, phone TEXT, body TEXT)"))
            c.execute(text("CREATE INDEX ix_phone ON leads(phone)"))
        e.dispose()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 2.0  # spawned interpreters import first, then all start together
        procs = [ctx.Process(target=_process, args=(url, before, start_at, out)) for _ in range(PROCS)]
        [p.start() for p in procs]
        lat = [x for _ in procs for x in out.get(timeout=SECONDS * 20 + 60)]
        [p.join(30) for p in procs]
    asked = int(SECONDS * RATE / (PROCS * THREADS)) * PROCS * THREADS
    return {"n": len(lat), "asked": asked, "p50": C.percentile(lat, 50), "p90": C.percentile(lat, 90),
            "p99": C.percentile(lat, 99), "max": max(lat)}


def run() -> str:
    rows, runs = [], {True: [], False: []}
    for r in range(ROUNDS):
        for before in ((True, False) if r % 2 == 0 else (False, True)):
            res = _one(before)
            runs[before].append(res)
            rows.append([str(r + 1), "before: SQLite's busy handler" if before else "**after: crm_shared.sqlitelock**",
                         f"{res['n']:,} / {res['asked']:,}", C.fmt_ms(res["p50"]), C.fmt_ms(res["p90"]),
                         C.fmt_ms(res["p99"]), C.fmt_ms(res["max"])])

    def med(before, k):
        xs = sorted(x[k] for x in runs[before])
        return xs[len(xs) // 2]
    return "\n".join([
        f"{PROCS} processes x {THREADS} threads, {RATE} transactions/s in all for {SECONDS:.0f} s per run, "
        f"{ROUNDS} rounds, before and after in turn (the order flipped every other round); each transaction: "
        "BEGIN IMMEDIATE, a read, three inserts with about 1 ms of Python between them, COMMIT, on one SQLite "
        "file in WAL mode (synchronous=NORMAL). Latency from asking for the transaction to its COMMIT "
        "returning; \"done / asked\" counts the transactions finished in the time (a writer that waits long "
        "falls behind its pace).", "",
        C.md_table(["Round", "Writers wait in", "done / asked", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows), "",
        f"Median of the rounds: p99 {C.fmt_ms(med(True, 'p99'))} ms before, {C.fmt_ms(med(False, 'p99'))} ms after; "
        f"p50 {C.fmt_ms(med(True, 'p50'))} ms before, {C.fmt_ms(med(False, 'p50'))} ms after. "
        f"Load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}.",
    ])


if __name__ == "__main__":
    print(run())
