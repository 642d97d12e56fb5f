"""The sales service's benchmarks (run through bench/sales.py, in a process of their own): approval decisions per second (each decision one transaction with its
outbox rows, through the domain and through the HTTP API) and the funnel report on 100,000
opportunities, on PostgreSQL (a throw-away database) and on SQLite (a temporary file).

    .venv/bin/python bench/sales.py        # prints the Markdown section
    .venv/bin/python -m sales.bench        # the same
    make bench                             # every benchmark under bench/ -> docs/BENCHMARKS.md

Sizes: BENCH_SALES_APPROVALS (default 600 requests of three steps), BENCH_SALES_HTTP (300),
BENCH_SALES_OPPS (100000)."""
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
N_OPPS = int(os.environ.get("BENCH_SALES_OPPS", 100_000))
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
    from . import models
    from .domain.pipeline import INDEX, STAGES
    rng = random.Random(7)
    t0 = time.perf_counter()
    with rt.engine.begin() as c:
        c.execute(models.customers.insert().values(id=10**6, name="Funnel Co", source="manual", tier="prospect",
                                                   churn_risk=False, revision=1, created_at=NOW, updated_at=NOW))
        c.execute(models.exchange_rates.insert().values(currency="USD", rate=Decimal("7.1"), updated_at=NOW))
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
    return time.perf_counter() - t0


def bench_funnel(rt, n: int) -> dict:
    from sqlalchemy import true
    from .domain import reports
    seed = _seed_opportunities(rt, n)
    out = {"seed_s": seed}
    for name, kw in (("all", {}), ("one team", {"team": "team1"}), ("one rep, 90 days",
                                                                    {"owner": "rep7",
                                                                     "since": (NOW - timedelta(days=90)).date()})):
        times = []
        for _ in range(5):
            with rt.uow() as uow:
                t = time.perf_counter()
                data = reports.funnel(uow.session, where=true(), **kw)
                times.append((time.perf_counter() - t) * 1000)
        out[name] = (statistics.median(times), data["total"])
    times = []
    for _ in range(3):
        with rt.uow() as uow:
            t = time.perf_counter()
            reports.forecast(uow.session, where=true())
            times.append((time.perf_counter() - t) * 1000)
    out["forecast"] = statistics.median(times)
    return out


def _one_database(label: str, url: str, tmp: str) -> tuple[list, list]:
    app = _app(url, tmp)
    rt = runtime_of(app)
    try:
        d_rate, d_lat = bench_domain_decisions(rt, N_APPROVALS)
        h_rate, h_lat = bench_http_decisions(app, N_HTTP)
        b_rate, b_lat = bench_baseline_commits(rt, 3 * N_HTTP)
        f = bench_funnel(rt, N_OPPS)
    finally:
        rt.close()
    decisions = [
        [label, "domain (`approvals.decide` in its own transaction)", 3 * N_APPROVALS, C.fmt_rate(d_rate),
         C.fmt_ms(C.percentile(d_lat, 50)), C.fmt_ms(C.percentile(d_lat, 99))],
        [label, "HTTP (`POST /v1/approvals/{id}/decision`, Flask test client, JWT)", 3 * N_HTTP, C.fmt_rate(h_rate),
         C.fmt_ms(C.percentile(h_lat, 50)), C.fmt_ms(C.percentile(h_lat, 99))],
        [label, "baseline: one single-row UPDATE per transaction", 3 * N_HTTP, C.fmt_rate(b_rate),
         C.fmt_ms(C.percentile(b_lat, 50)), C.fmt_ms(C.percentile(b_lat, 99))],
    ]
    funnel = [[label, f"{N_OPPS:,}", what, f["all"][1] if what == "all" else f[what][1], C.fmt_ms(f[what][0])]
              for what in ("all", "one team", "one rep, 90 days")]
    funnel.append([label, f"{N_OPPS:,}", "forecast (weighted, by month)", "—", C.fmt_ms(f["forecast"])])
    funnel.append([label, f"{N_OPPS:,}", f"(seeding: bulk insert, {f['seed_s']:.1f} s)", "", ""])
    return decisions, funnel


def run() -> str:
    decisions, funnel = [], []
    with tempfile.TemporaryDirectory() as tmp:
        with C.postgres_database("bench_sales") as url:
            d, f = _one_database("PostgreSQL", url, tmp)
            decisions += d
            funnel += f
        d, f = _one_database("SQLite", f"sqlite:///{tmp}/sales.db", tmp)
        decisions += d
        funnel += f
    return "\n".join([
        "Approval decisions: requests at 25 % discount (three steps: sales_manager, general_manager, finance), "
        "decided one after another by one client; each decision locks the step, updates it conditionally, writes "
        "the trail and the `approval.decided` / `approval.requested` outbox rows, and commits.",
        "",
        C.md_table(["Database", "Path", "Decisions", "Decisions/s", "p50 ms", "p99 ms"], decisions),
        "",
        "Funnel report: `reports.funnel` aggregates in the database (GROUP BY stage, furthest stage, currency) "
        "and converts to the base currency in Python; median of 5 runs (forecast: 3). 20 % of the "
        "opportunities are in USD.",
        "",
        C.md_table(["Database", "Opportunities", "Query", "Matched", "Median ms"], funnel),
    ])


if __name__ == "__main__":
    print(run())
