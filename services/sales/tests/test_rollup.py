"""The report read model (domain/rollup.py): after a random mixed workload of creates, stage moves,
wins, losses, reassignments, amount/currency and close-date changes, the funnel and the forecast
read from the rollup equal the same reports aggregated from the raw opportunities, for every filter
a user can set, on SQLite and PostgreSQL; and the rollup kept change by change equals one rebuilt
from scratch. Also: two concurrent changes to different opportunities of the same key both count
(PostgreSQL)."""
from __future__ import annotations

import random
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, true

from crm_shared.web.auth import Principal

from sales import models
from sales.domain import access, pipeline, reports, rollup
from sales.testing import START, make_app

OWNERS = [("rep1", "east"), ("rep2", "east"), ("rep3", "west"), ("rep4", None)]
CURRENCIES = ["CNY", "CNY", "USD", "EUR", "JPY"]  # EUR has no rate: listed as unconverted
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _runtime(url, tmp_path, clock):
    from crm_shared.web.app import runtime_of
    return runtime_of(make_app(url, tmp_path, clock))


def _amount(rng, currency):
    cents = rng.randrange(0, 5_000_000_00)
    return Decimal(cents // 100) if currency == "JPY" else Decimal(cents) / 100


def _workload(rt, rng, n_ops: int) -> None:
    with rt.uow() as uow:
        s = uow.session
        s.execute(models.customers.insert().values(id=1, name="Rollup Co", source="manual", tier="prospect",
                                                   churn_risk=False, revision=1, created_at=START, updated_at=START))
        s.execute(models.exchange_rates.insert().values(currency="USD", rate=Decimal("7.1234567891"), updated_at=START))
        s.execute(models.exchange_rates.insert().values(currency="JPY", rate=Decimal("0.0473"), updated_at=START))
        uow.commit()
    ids: list[int] = []
    for i in range(n_ops):
        with rt.uow() as uow:
            s = uow.session
            op = rng.random()
            if op < 0.35 or not ids:
                owner, team = rng.choice(OWNERS)
                cur = rng.choice(CURRENCIES)
                # over four months, at any time of day; some at midnight or just before, some not in UTC
                at = START - timedelta(days=rng.randrange(0, 120), seconds=rng.randrange(0, 86400))
                if i % 7 == 0:
                    at = at.replace(hour=0, minute=0, second=0, microsecond=0)
                elif i % 11 == 0:
                    at = at.replace(hour=23, minute=59, second=59, microsecond=999999)
                elif i % 5 == 0:
                    at = at.astimezone(SHANGHAI)
                close = None if rng.random() < 0.2 else (START + timedelta(days=rng.randrange(-10, 200))).date()
                ids.append(pipeline.create(s, customer_id=1, name=f"o{i}", amount=_amount(rng, cur), currency=cur,
                                           owner_id=owner, team_id=team, lead_id=None, now=at, expected_close=close))
            else:
                oid = rng.choice(ids)
                row = pipeline.get(s, oid)
                if row.stage in ("won", "lost"):
                    continue
                changes: dict = {}
                if op < 0.6:
                    changes["stage"] = rng.choice(pipeline.OPEN_STAGES)
                elif op < 0.67:
                    pipeline.mark_won(s, oid, now=START)
                elif op < 0.72:
                    changes.update(stage="lost", lost_reason="price")
                elif op < 0.82:
                    owner, team = rng.choice(OWNERS)
                    changes.update(owner_id=owner, team_id=team)
                elif op < 0.92:
                    cur = rng.choice(CURRENCIES)
                    changes.update(currency=cur, expected_amount=_amount(rng, cur))
                else:
                    changes["expected_close"] = None if rng.random() < 0.3 else (
                        START + timedelta(days=rng.randrange(0, 200))).date()
                if changes:
                    pipeline.move(s, oid, changes, now=START)
            uow.commit()


def _filters():
    d = START.date()
    yield {}
    yield {"team": "east"}
    yield {"team": "west"}
    yield {"owner": "rep1"}
    yield {"owner": "rep4"}
    yield {"owner": "rep2", "since": d - timedelta(days=90)}
    yield {"since": date(2026, 1, 1), "until": date(2026, 1, 31)}  # a month
    yield {"since": date(2026, 2, 1), "until": date(2026, 2, 28), "team": "east"}
    yield {"since": date(2025, 12, 15), "until": date(2026, 2, 10)}  # partial months at both ends
    yield {"since": date(2026, 1, 10), "until": date(2026, 1, 20)}  # inside one month
    yield {"since": date(2026, 1, 10), "until": date(2026, 1, 10)}  # one day
    yield {"since": date(2026, 1, 20)}
    yield {"until": date(2026, 1, 20)}
    yield {"until": date(2026, 1, 31)}
    yield {"since": date(2026, 2, 1)}
    yield {"since": date(2026, 2, 10), "until": date(2026, 1, 10)}  # empty
    yield {"since": date(2030, 1, 1)}


SCOPES = [Principal("gm", "gm", ("general_manager",), None), Principal("mgr", "mgr", ("sales_manager",), "east"),
          Principal("rep3", "rep3", ("sales_rep",), "west"), Principal("x", "x", ("support",), None)]


def _rollup_rows(s):
    f = {tuple(r[:7]): (int(r.n), int(r.amount_minor)) for r in s.execute(select(models.funnel_rollup)) if r.n}
    c = {tuple(r[:6]): (int(r.n), int(r.amount_minor)) for r in s.execute(select(models.forecast_rollup)) if r.n}
    return f, c


@pytest.mark.parametrize("seed", [1, 2])
def test_reports_from_the_rollup_equal_the_reports_from_the_raw_rows(database_url, tmp_path, clock, seed):
    rt = _runtime(database_url, tmp_path, clock)
    try:
        _workload(rt, random.Random(seed), 400)
        with rt.uow() as uow:
            s = uow.session
            assert s.execute(select(models.opportunities.c.stage).where(
                models.opportunities.c.stage.in_(("won", "lost")))).first() is not None
            checked = 0
            for who in SCOPES:
                where = access.scope(models.opportunities, who)
                for kw in _filters():
                    fast = reports.funnel(s, where=where, **kw)
                    slow = reports.funnel(s, where=where, raw=True, **kw)
                    assert fast == slow, (who.id, kw)
                    checked += fast["total"]
                for kw in ({}, {"team": "east"}, {"owner": "rep2"}, {"owner": "rep4"}):
                    assert reports.forecast(s, where=where, **kw) == reports.forecast(s, where=where, raw=True, **kw)
            assert checked > 0
            everything = reports.funnel(s, where=true())
            assert everything["total"] == s.execute(select(models.opportunities.c.id)).all().__len__()
            assert everything["unconverted_currencies"] == ["EUR"]
            # kept change by change == rebuilt from the opportunities
            kept = _rollup_rows(s)
            rollup.rebuild(s)
            assert _rollup_rows(s) == kept
            uow.rollback()
    finally:
        rt.close()


def test_a_filter_on_another_column_reads_the_raw_rows(sqlite_api):
    rt = sqlite_api.runtime
    _workload(rt, random.Random(3), 60)
    o = models.opportunities
    with rt.uow() as uow:
        where = o.c.customer_id == 1
        with pytest.raises(rollup.NotCovered):
            rollup.funnel_groups(uow.session, where=where)
        assert reports.funnel(uow.session, where=where) == reports.funnel(uow.session, where=where, raw=True)
        assert reports.funnel(uow.session, where=where)["total"] > 0


def test_concurrent_changes_on_one_key_all_count(pg_url, tmp_path, clock):
    rt = _runtime(pg_url, tmp_path, clock)
    try:
        with rt.uow() as uow:
            uow.session.execute(models.customers.insert().values(
                id=1, name="C", source="manual", tier="prospect", churn_risk=False, revision=1, created_at=START,
                updated_at=START))
            uow.commit()
        barrier = threading.Barrier(8)
        errors = []

        def worker():
            try:
                barrier.wait()
                for _ in range(10):
                    with rt.uow() as uow:  # same owner, day, stage, currency: one rollup row
                        oid = pipeline.create(uow.session, customer_id=1, name="o", amount=Decimal("1.50"),
                                              currency="CNY", owner_id="rep1", team_id="east", lead_id=None,
                                              now=START)
                        pipeline.move(uow.session, oid, {"stage": "proposal"}, now=START)
                        uow.commit()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with rt.uow() as uow:
            f = reports.funnel(uow.session, where=true())
            assert f["total"] == 80
            proposal = next(x for x in f["stages"] if x["stage"] == "proposal")
            assert proposal["count"] == 80 and proposal["amount_base"] == Decimal("120.00")
            assert f == reports.funnel(uow.session, where=true(), raw=True)
    finally:
        rt.close()


def test_since_and_until_are_utc_days(sqlite_api):
    rt = sqlite_api.runtime
    with rt.uow() as uow:
        s = uow.session
        s.execute(models.customers.insert().values(id=1, name="C", source="manual", tier="prospect", churn_risk=False,
                                                   revision=1, created_at=START, updated_at=START))
        for at in (datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                   datetime(2026, 2, 1, 0, 0, tzinfo=timezone.utc)):
            pipeline.create(s, customer_id=1, name="o", amount=Decimal(1), currency="CNY", owner_id="rep1",
                            team_id=None, lead_id=None, now=at)
        uow.commit()
    with rt.uow() as uow:
        jan = reports.funnel(uow.session, where=true(), since=date(2026, 1, 1), until=date(2026, 1, 31))
        feb = reports.funnel(uow.session, where=true(), since=date(2026, 2, 1), until=date(2026, 2, 28))
        assert (jan["total"], feb["total"]) == (1, 1)


def test_migration_0006_fills_the_rollups_from_existing_opportunities(database_url, tmp_path, clock):
    from crm_shared.migrations import downgrade, upgrade
    from sales.service import SERVICE
    rt = _runtime(database_url, tmp_path, clock)
    try:
        _workload(rt, random.Random(5), 150)
        with rt.uow() as uow:
            kept = _rollup_rows(uow.session)
        assert kept[0] and kept[1]
        rt.engine.dispose()
        downgrade(SERVICE, database_url, "0005")  # drops the rollups; the opportunities stay
        upgrade(SERVICE, database_url)  # creates and fills them
        with rt.uow() as uow:
            assert _rollup_rows(uow.session) == kept
            assert reports.funnel(uow.session, where=true()) == reports.funnel(uow.session, where=true(), raw=True)
    finally:
        rt.close()


def test_the_nightly_job_repairs_what_a_writer_without_the_rollup_changed(database_url, tmp_path, clock):
    """The previous release's pods (during a rollout, after a rollback) write opportunities with
    plain statements and never touch the rollup; `report_rollups` puts it right."""
    from sales import jobs
    rt = _runtime(database_url, tmp_path, clock)
    try:
        _workload(rt, random.Random(9), 120)
        o = models.opportunities
        with rt.engine.begin() as c:  # what the old code does: no rollup
            c.execute(o.update().where(o.c.id % 3 == 0, o.c.stage.in_(pipeline.OPEN_STAGES)).values(
                stage="won", furthest_stage=pipeline.INDEX["won"]))
            c.execute(o.insert().values(customer_id=1, name="old", expected_amount=Decimal("12.34"), currency="CNY",
                                        stage="qualification", furthest_stage=0, owner_id="rep1", team_id="east",
                                        created_at=START, updated_at=START))
        with rt.uow() as uow:
            assert reports.funnel(uow.session, where=true()) != reports.funnel(uow.session, where=true(), raw=True)
        jobs.report_rollups(rt)
        with rt.uow() as uow:
            s = uow.session
            for kw in ({}, {"team": "east"}, {"owner": "rep2", "since": date(2026, 1, 1)}):
                assert reports.funnel(s, where=true(), **kw) == reports.funnel(s, where=true(), raw=True, **kw)
            for kw in ({}, {"team": "east"}):
                assert reports.forecast(s, where=true(), **kw) == reports.forecast(s, where=true(), raw=True, **kw)
    finally:
        rt.close()


def test_crm_job_run_repairs_the_rollup_after_a_rollout_at_once(database_url, tmp_path, clock):
    """`crm job run sales report_rollups`: what the operator runs after a rollout instead of waiting
    for the night; also lists a service's jobs and refuses unknown ones."""
    from click.testing import CliRunner

    from crm_shared.cli import main
    rt = _runtime(database_url, tmp_path, clock)
    try:
        _workload(rt, random.Random(4), 60)
        o = models.opportunities
        with rt.engine.begin() as c:  # the previous release: no rollup
            c.execute(o.update().where(o.c.stage.in_(pipeline.OPEN_STAGES)).values(
                stage="won", furthest_stage=pipeline.INDEX["won"]))
        with rt.uow() as uow:
            assert reports.funnel(uow.session, where=true()) != reports.funnel(uow.session, where=true(), raw=True)
        env = {"DATABASE_URL": database_url, "BUS_URL": f"sqlite:///{tmp_path}/cli-bus.db"}
        runner = CliRunner()
        listed = runner.invoke(main, ["job", "run", "sales"], env=env)
        assert listed.exit_code == 0 and "report_rollups\t45 2 * * *" in listed.output, listed.output
        r = runner.invoke(main, ["job", "run", "sales", "report_rollups"], env=env)
        assert r.exit_code == 0 and "ran sales's report_rollups" in r.output, r.output
        with rt.uow() as uow:
            s = uow.session
            for kw in ({}, {"team": "east"}):
                assert reports.funnel(s, where=true(), **kw) == reports.funnel(s, where=true(), raw=True, **kw)
        bad = runner.invoke(main, ["job", "run", "sales", "no_such_job"], env=env)
        assert bad.exit_code == 2 and "report_rollups" in bad.output
        assert runner.invoke(main, ["job", "run", "nobody", "x"], env=env).exit_code == 2
        if rt.is_postgres:  # a worker running the job holds its lock: the command waits for nobody
            import zlib

            from sqlalchemy import func, select
            with rt.engine.connect() as held:
                held.execute(select(func.pg_advisory_lock(zlib.crc32(b"job:sales:report_rollups"))))
                busy = runner.invoke(main, ["job", "run", "sales", "report_rollups"], env=env)
                assert busy.exit_code == 1 and "running in a worker" in busy.output, busy.output
                held.execute(select(func.pg_advisory_unlock(zlib.crc32(b"job:sales:report_rollups"))))
                held.commit()
    finally:
        rt.close()
