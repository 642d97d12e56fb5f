"""The sales service's benchmarks (run through bench/sales.py, in a process of their own): approval decisions per second (each decision one transaction with its
outbox rows, through the domain and through the HTTP API), on PostgreSQL (a throw-away database)
and on SQLite (a temporary file); the funnel and forecast reports from the rollups against the raw
rows, on 10,000 and 1,000,000 opportunities on PostgreSQL (with EXPLAIN plans) and 100,000 on SQLite.

    .venv/bin/python bench/sales.py        # prints the Markdown section
    .venv/bin/python -m sales.bench        # the same
    make bench                             # every benchmark under bench/ -> docs/BENCHMARKS.md

Sizes: BENCH_SALES_APPROVALS (default 600 requests of three steps), BENCH_SALES_HTTP (300),
BENCH_SALES_OPPS (100000, SQLite), BENCH_SALES_OPPS_SMALL (10000) and BENCH_SALES_OPPS_LARGE (1000000,
PostgreSQL)."""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

# bench/_common.py, from the repository (appended: the `sales` package must not be shadowed by bench/sales.py)
sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))

import _common as C  # noqa: E402
from crm_shared.clock import FrozenClock  # noqa: E402
from crm_shared.migrations import upgrade  # noqa: E402
from crm_shared.testing import demo_settings  # noqa: E402
from crm_shared.web.app import runtime_of  # noqa: E402
from crm_shared.web.auth import Principal  # noqa: E402

TITLE = "Sales: approval decisions and the funnel report"
N_APPROVALS = int(os.environ.get("BENCH_SALES_APPROVALS", 600))
N_HTTP = int(os.environ.get("BENCH_SALES_HTTP", 300))
N_OPPS = int(os.environ.get("BENCH_SALES_OPPS", 100_000))  # SQLite
N_SMALL = int(os.environ.get("BENCH_SALES_OPPS_SMALL", 10_000))  # PostgreSQL, against
N_LARGE = int(os.environ.get("BENCH_SALES_OPPS_LARGE", 1_000_000))
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
REQUESTER = Principal("rep1", "rep1", ("sales_rep",), "east")
STEP_USERS = [Principal("mgr1", "mgr1", ("sales_manager",), "east"),
              Principal("gm1", "gm1", ("general_manager",), None),
              Principal("fin1", "fin1", ("finance",), None)]


def _app(url: str, tmp: str):
    from .app import create_app
    from .service import SERVICE
    upgrade(SERVICE, url)
    return create_app(demo_settings("sales", url, f"sqlite:///{tmp}/bus.db", "bench"), clock=FrozenClock(NOW),
                      testing=True)


def _seed_requests(rt, n: int) -> list[int]:
    """n quotes at 25 % discount submitted for approval (three steps each)."""
    from . import models
    from .domain import approvals, customers, pipeline, quotes
    ids = []
    with rt.uow() as uow:
        s = uow.session
        from sqlalchemy import select
        if s.execute(select(models.products.c.id).where(models.products.c.sku == "SEAT")).first() is None:
            s.execute(models.products.insert().values(sku="SEAT", name="Seat", list_price=Decimal("1000.00"),
                                                      currency="CNY", active=True))
        cust = customers.create(uow, {"name": "Bench Co", "owner_id": "rep1", "team_id": "east"}, now=NOW,
                                source="manual", check_duplicates=False)
        oid = pipeline.create(s, customer_id=cust.id, name="bench", amount=Decimal("1"), currency="CNY",
                              owner_id="rep1", team_id="east", lead_id=None, now=NOW)
        opp = pipeline.get(s, oid)
        for _ in range(n):
            qid = quotes.create(s, opportunity=opp, currency="CNY", owner_id="rep1", team_id="east", now=NOW,
                                lines=[{"sku": "SEAT", "quantity": Decimal(3), "discount_pct": Decimal(25)}])
            quotes.set_status(s, qid, "pending_approval", now=NOW, expect=("draft",))
            ids.append(approvals.start(uow, subject_type="quote", subject_id=qid, requester_id="rep1",
                                       requester_team="east", value=Decimal(25), amount=Decimal("2250.00"),
                                       currency="CNY", max_discount_pct=Decimal(25), now=NOW))
        uow.commit()
    return ids


def bench_domain_decisions(rt, n: int) -> tuple[float, list[float]]:
    from .domain import approvals
    ids = _seed_requests(rt, n)
    lat = []
    t0 = time.perf_counter()
    for step, user in enumerate(STEP_USERS, 1):
        for aid in ids:
            t = time.perf_counter()
            with rt.uow() as uow:
                approvals.decide(uow, aid, user, "approve", None, now=NOW, step=step)
                uow.commit()
            lat.append((time.perf_counter() - t) * 1000)
    return C.rate(len(lat), time.perf_counter() - t0), lat


def bench_baseline_commits(rt, n: int) -> tuple[float, list[float]]:
    """The floor: one single-row UPDATE per transaction on the same database and connection pool."""
    from sqlalchemy import text
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        with rt.engine.begin() as c:
            c.execute(text("UPDATE customers SET revision = revision + 1 WHERE id = (SELECT min(id) FROM customers)"))
        lat.append((time.perf_counter() - t) * 1000)
    return C.rate(n, time.perf_counter() - t0), lat


def bench_http_decisions(app, n: int) -> tuple[float, list[float]]:
    from crm_shared.config import DEV_JWT_SECRET
    from crm_shared.web.auth import dev_token
    ids = _seed_requests(runtime_of(app), n)
    client = app.test_client()
    heads = [{"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, u.id, u.name, list(u.roles), u.team)}
             for u in STEP_USERS]
    lat = []
    t0 = time.perf_counter()
    for step, h in enumerate(heads, 1):
        for aid in ids:
            t = time.perf_counter()
            r = client.post(f"/v1/approvals/{aid}/decision", json={"decision": "approve", "step": step}, headers=h)
            assert r.status_code == 200, r.json
            lat.append((time.perf_counter() - t) * 1000)
    return C.rate(len(lat), time.perf_counter() - t0), lat


def _seed_opportunities(rt, n: int) -> float:
    """n opportunities in batches of multi-row INSERTs (SQLite), then the rollups rebuilt from them."""
    from . import models
    from .domain import rollup
    from .domain.pipeline import INDEX, STAGES
    rng = random.Random(7)
    t0 = time.perf_counter()
    with rt.engine.begin() as c:
        _funnel_customer(c)
        batch = []
        for i in range(n):
            stage = rng.choices(STAGES, weights=(30, 20, 15, 10, 10, 15))[0]
            furthest = INDEX[stage] if stage != "lost" else rng.randrange(0, 4)
            batch.append({"customer_id": 10**6, "lead_id": None, "name": f"opp {i}",
                          "expected_amount": Decimal(rng.randrange(100_00, 1_000_000_00)) / 100,
                          "currency": "USD" if i % 5 == 0 else "CNY", "stage": stage, "furthest_stage": furthest,
                          "owner_id": f"rep{i % 50}", "team_id": f"team{i % 5}", "created_at": NOW - timedelta(
                              days=rng.randrange(0, 365)), "updated_at": NOW,
                          "expected_close": (NOW + timedelta(days=rng.randrange(0, 365))).date()})
            if len(batch) == 5000:
                c.execute(models.opportunities.insert(), batch)
                batch = []
        if batch:
            c.execute(models.opportunities.insert(), batch)
    with rt.uow() as uow:
        rollup.rebuild(uow.session)
        uow.commit()
    return time.perf_counter() - t0


def _funnel_customer(c) -> None:
    from sqlalchemy import select
    from . import models
    if c.execute(select(models.customers.c.id).where(models.customers.c.id == 10**6)).first() is None:
        c.execute(models.customers.insert().values(id=10**6, name="Funnel Co", source="manual", tier="prospect",
                                                   churn_risk=False, revision=1, created_at=NOW, updated_at=NOW))
        c.execute(models.exchange_rates.insert().values(currency="USD", rate=Decimal("7.1"), updated_at=NOW))


# the same distribution as _seed_opportunities, generated by PostgreSQL itself (one INSERT ... SELECT
# per 250,000 rows): 1,000,000 rows in seconds rather than minutes
PG_SEED = """
INSERT INTO opportunities (customer_id, lead_id, name, expected_amount, currency, stage, furthest_stage, owner_id,
                           team_id, created_at, updated_at, expected_close)
SELECT 1000000, NULL, 'opp ' || i, floor(10000 + r_amount * 99990000) / 100,
       CASE WHEN i %% 5 = 0 THEN 'USD' ELSE 'CNY' END, stage,
       CASE WHEN stage = 'lost' THEN floor(r_lost * 4)::int ELSE
            array_position(ARRAY['qualification','needs_analysis','proposal','negotiation','won'], stage) - 1 END,
       'rep' || (i %% 50), 'team' || (i %% 5), %(now)s - floor(r_created * 365) * interval '1 day', %(now)s,
       (%(now)s + floor(r_close * 365) * interval '1 day')::date
FROM (SELECT i, random() AS r_amount, random() AS r_lost, random() AS r_created, random() AS r_close,
             CASE WHEN r < 0.30 THEN 'qualification' WHEN r < 0.50 THEN 'needs_analysis' WHEN r < 0.65 THEN 'proposal'
                  WHEN r < 0.75 THEN 'negotiation' WHEN r < 0.85 THEN 'won' ELSE 'lost' END AS stage
      FROM (SELECT i, random() AS r FROM generate_series(%(lo)s::int, %(hi)s::int) AS i) g) h
"""


def _seed_pg(rt, lo: int, hi: int) -> float:
    """Opportunities lo..hi (1-based) generated in the database, then the rollups rebuilt."""
    from .domain import rollup
    t0 = time.perf_counter()
    with rt.engine.begin() as c:
        _funnel_customer(c)
        raw = c.connection.driver_connection
        raw.execute("SELECT setseed(%s)", (0.7 if lo == 1 else 0.3,))
        for a in range(lo, hi + 1, 250_000):
            raw.execute(PG_SEED, {"now": NOW, "lo": a, "hi": min(hi, a + 249_999)})
    with rt.uow() as uow:
        rollup.rebuild(uow.session)
        uow.commit()
    with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE opportunities")
        c.exec_driver_sql("VACUUM ANALYZE funnel_rollup")
        c.exec_driver_sql("VACUUM ANALYZE forecast_rollup")
    return time.perf_counter() - t0


MONTH = {"since": datetime(2026, 1, 1).date(), "until": datetime(2026, 1, 31).date()}
QUERIES = (("all", "funnel", {}), ("one team", "funnel", {"team": "team1"}),
           ("one rep, 90 days", "funnel", {"owner": "rep7", "since": (NOW - timedelta(days=90)).date()}),
           ("a month (January), all teams", "funnel", MONTH),
           ("forecast, all", "forecast", {}), ("forecast, one team", "forecast", {"team": "team1"}))


def _time(rt, fn, runs: int) -> tuple[float, dict]:
    times = []
    for _ in range(runs):
        with rt.uow() as uow:
            t = time.perf_counter()
            data = fn(uow.session)
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), data


def bench_funnel(rt, runs_raw: int = 5) -> dict:
    """Each query from the rollup (now) and from the raw rows (before), median of 5 runs (raw on
    the large size: runs_raw); both must give the same report."""
    from sqlalchemy import true
    from .domain import reports
    out = {}
    for name, report, kw in QUERIES:
        fn = getattr(reports, report)
        fast, a = _time(rt, lambda s: fn(s, where=true(), **kw), 5)
        slow, b = _time(rt, lambda s: fn(s, where=true(), raw=True, **kw), runs_raw)
        assert a == b, f"{name}: the rollup and the raw rows disagree"
        matched = a["total"] if report == "funnel" else sum(m["count"] for m in a["months"])
        out[name] = (fast, slow, matched)
    return out


def _explain(rt, stmt) -> str:
    from sqlalchemy.dialects import postgresql
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with rt.engine.connect() as c:
        return "\n".join(r[0] for r in c.exec_driver_sql(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"))


def plans(rt) -> dict:
    from sqlalchemy import true
    from .domain import rollup
    out = {}
    for name, report, kw in QUERIES:
        q = rollup.funnel_query(where=true(), **kw) if report == "funnel" else rollup.forecast_query(where=true(), **kw)
        out[name] = _explain(rt, q)
    return out


def _decisions(rt, app) -> tuple:
    d_rate, d_lat = bench_domain_decisions(rt, N_APPROVALS)
    h_rate, h_lat = bench_http_decisions(app, N_HTTP)
    b_rate, b_lat = bench_baseline_commits(rt, 3 * N_HTTP)
    return d_rate, d_lat, h_rate, h_lat, b_rate, b_lat


def _decision_rows(label, d_rate, d_lat, h_rate, h_lat, b_rate, b_lat) -> list:
    return [
        [label, "domain (`approvals.decide` in its own transaction)", 3 * N_APPROVALS, C.fmt_rate(d_rate),
         C.fmt_ms(C.percentile(d_lat, 50)), C.fmt_ms(C.percentile(d_lat, 99))],
        [label, "HTTP (`POST /v1/approvals/{id}/decision`, Flask test client, JWT)", 3 * N_HTTP, C.fmt_rate(h_rate),
         C.fmt_ms(C.percentile(h_lat, 50)), C.fmt_ms(C.percentile(h_lat, 99))],
        [label, "baseline: one single-row UPDATE per transaction", 3 * N_HTTP, C.fmt_rate(b_rate),
         C.fmt_ms(C.percentile(b_lat, 50)), C.fmt_ms(C.percentile(b_lat, 99))],
    ]


def _funnel_rows(label, n, f, seed_note) -> list:
    rows = [[label, f"{n:,}", what, f"{f[what][2]:,}", C.fmt_ms(f[what][0]), C.fmt_ms(f[what][1]),
             f"{f[what][1] / f[what][0]:.0f}x"] for what, _, _ in QUERIES]
    rows.append([label, f"{n:,}", f"({seed_note})", "", "", "", ""])
    return rows


def _postgres(url: str, tmp: str) -> tuple[list, list, dict, dict]:
    app = _app(url, tmp)
    rt = runtime_of(app)
    try:
        decisions = _decision_rows("PostgreSQL", *_decisions(rt, app))
        seed_small = _seed_pg(rt, 1, N_SMALL)
        small = bench_funnel(rt)
        plans_small = plans(rt)
        seed_large = _seed_pg(rt, N_SMALL + 1, N_LARGE)
        large = bench_funnel(rt, runs_raw=3)
        plans_large = plans(rt)
    finally:
        rt.close()
    funnel = _funnel_rows("PostgreSQL", N_SMALL, small, f"seeding: generated in the database and the rollups "
                                                        f"rebuilt, {seed_small:.1f} s")
    funnel += _funnel_rows("PostgreSQL", N_LARGE, large, f"seeding: {N_LARGE - N_SMALL:,} more, generated in "
                                                        f"the database, rollups rebuilt, {seed_large:.1f} s")
    return decisions, funnel, {"small": small, "large": large}, {"small": plans_small, "large": plans_large}


def _sqlite(url: str, tmp: str) -> tuple[list, list]:
    app = _app(url, tmp)
    rt = runtime_of(app)
    try:
        decisions = _decision_rows("SQLite", *_decisions(rt, app))
        seed = _seed_opportunities(rt, N_OPPS)
        f = bench_funnel(rt, runs_raw=3)
    finally:
        rt.close()
    return decisions, _funnel_rows("SQLite (information)", N_OPPS, f,
                                   f"seeding: multi-row INSERTs of 5,000 and the rollups rebuilt, {seed:.1f} s")


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        with C.postgres_database("bench_sales") as url:
            decisions, funnel, res, pl = _postgres(url, tmp)
        d, f = _sqlite(f"sqlite:///{tmp}/sales.db", tmp)
        decisions += d
        funnel += f
    growth = N_LARGE / N_SMALL
    ratios = []
    for what, _, _ in QUERIES:
        r = res["large"][what][0] / res["small"][what][0]
        raw = res["large"][what][1] / res["small"][what][1]
        ratios.append(f"{what} {r:.1f}x (from the raw rows: {raw:.1f}x)")
    worst = max(res["large"][w][0] / res["small"][w][0] for w, _, _ in QUERIES)
    verdict = "sub-linear: goal met" if worst < growth / 4 else "NOT sub-linear"  # met: under 1/4 of the growth
    text = [
        "Approval decisions: requests at 25 % discount (three steps: sales_manager, general_manager, finance), "
        "decided one after another by one client; each decision locks the step, updates it conditionally, writes "
        "the trail and the `approval.decided` / `approval.requested` outbox rows, and commits.",
        "",
        C.md_table(["Database", "Path", "Decisions", "Decisions/s", "p50 ms", "p99 ms"], decisions),
        "",
        "Funnel and forecast reports (`reports.funnel`, `reports.forecast`, whole-company scope) read the "
        "rollups `funnel_rollup` and `forecast_rollup` (domain/rollup.py: counts and amounts per period × rep × "
        "team × stage × furthest stage × currency, and per rep × team × open stage × currency × close date, "
        "kept in the transaction of every opportunity change); beside each, the same report aggregated from "
        "the raw opportunities as before (`raw=True`, the baseline), and the bench asserts the two reports are "
        "equal. Median of 5 runs (raw on 1,000,000 and on SQLite: 3). 20 % of the opportunities are in USD; "
        "50 reps in 5 teams; created over the past 365 days.",
        "",
        C.md_table(["Database", "Opportunities", "Query", "Matched", "Rollup ms", "Raw rows ms (before)",
                    "Raw / rollup"], funnel),
        "",
        f"Scale on PostgreSQL, {N_LARGE:,} opportunities against {N_SMALL:,} ({growth:.0f}x the data), time "
        f"from the rollup: " + "; ".join(ratios) + f". Goal: sub-linear growth (counted as met below "
        f"{growth / 4:.0f}x); worst {worst:.1f}x ({verdict}). "
        "The rollup's rows grow with reps × stages × currencies × days, not with opportunities: a range is read "
        "from whole months (`M` rows) plus the days at its edges (`D` rows).",
        "",
        "Plans of the rollup queries (EXPLAIN (ANALYZE), PostgreSQL):",
        "",
    ]
    for size, n in (("small", N_SMALL), ("large", N_LARGE)):
        for what, _, _ in QUERIES:
            text += [f"{n:,} opportunities, {what}:", "", "```", pl[size][what], "```", ""]
    return "\n".join(text).rstrip() + "\n"


if __name__ == "__main__":
    print(run())
