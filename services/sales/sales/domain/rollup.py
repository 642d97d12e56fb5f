"""The report read model: opportunities counted and summed per (period, owner, team, stage, furthest
stage, currency) for the funnel, and per (owner, team, open stage, currency, expected close date) for
the forecast. Every change of an opportunity (pipeline.create / move / mark_won) applies its delta
here in the same transaction: minus the row as it was, plus the row as it is, one upsert
(`count = count + delta`) per table, keys in a fixed order so two transactions never deadlock.

The reports group exactly as they do over the raw rows (stage, furthest stage, currency; stage,
currency, close date) and convert each group to the base currency the same way, so they return the
same numbers; what they read grows with reps × stages × currencies × periods, not with opportunities.

Periods: `D` rows hold the UTC day of `created_at`, `M` rows its month; a date range is read from
whole months (`M`) plus the days at either edge (`D`)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import True_

from .. import models
from . import pipeline

o, fr, cr = models.opportunities, models.funnel_rollup, models.forecast_rollup
FUNNEL_KEY = ("grain", "period", "owner_id", "team_id", "stage", "furthest_stage", "currency")
FORECAST_KEY = ("grain", "owner_id", "team_id", "stage", "currency", "close_on")


class NotCovered(Exception):
    """A filter on a column the rollup does not have: the report reads the raw rows instead."""


def _day(ts) -> date:
    if isinstance(ts, str):  # pragma: no cover - SQLite returns datetimes through SQLAlchemy
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc)
    return ts.date()


def _minor(amount) -> int:
    return int((Decimal(amount) * 100).to_integral_value())


def _deltas(row, sign: int, funnel: dict, forecast: dict) -> None:
    if row is None:
        return
    day = _day(row.created_at)
    team = row.team_id or ""
    amount = _minor(row.expected_amount)
    for grain, period in (("D", day), ("M", day.replace(day=1))):
        key = (grain, period, row.owner_id, team, row.stage, row.furthest_stage, row.currency)
        n, a = funnel.get(key, (0, 0))
        funnel[key] = (n + sign, a + sign * amount)
    if row.stage in pipeline.OPEN_STAGES:
        close = row.expected_close.isoformat() if row.expected_close else ""
        for key in (("O", row.owner_id, team, row.stage, row.currency, close),
                    ("C", "", "", row.stage, row.currency, close)):
            n, a = forecast.get(key, (0, 0))
            forecast[key] = (n + sign, a + sign * amount)


def _upsert(session, table, names, deltas: dict) -> None:
    rows = [dict(zip(names, key), n=n, amount_minor=a) for key, (n, a) in sorted(deltas.items()) if n or a]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(rows)
    session.execute(stmt.on_conflict_do_update(index_elements=list(names), set_={
        "n": table.c.n + stmt.excluded.n, "amount_minor": table.c.amount_minor + stmt.excluded.amount_minor}))


def apply(session, old, new) -> None:
    """Move an opportunity's contribution from `old` (the row before the change; None when created)
    to `new` (the row after; None when removed). Call in the transaction that changes the row, with
    the row locked (SELECT ... FOR UPDATE) so the `old` it saw is the one it replaces."""
    funnel: dict = {}
    forecast: dict = {}
    _deltas(old, -1, funnel, forecast)
    _deltas(new, +1, funnel, forecast)
    _upsert(session, fr, FUNNEL_KEY, funnel)
    _upsert(session, cr, FORECAST_KEY, forecast)


def _rebind(clause, table):
    """`clause` (written against opportunities, e.g. access.scope) on the rollup `table`."""
    def swap(el):
        if getattr(el, "table", None) is o:
            if el.name not in ("owner_id", "team_id"):
                raise NotCovered(el.name)
            return table.c[el.name]
        return None
    return visitors.replacement_traverse(clause, {}, swap)


def _month_after(d: date) -> date:
    return (d.replace(day=1) + timedelta(days=32)).replace(day=1)


def _periods(since: date | None, until: date | None):
    """Rows of funnel_rollup covering created_at in [since, until] (UTC days), each exactly once:
    the whole months inside from the M rows, the days before the first and after the last whole
    month from the D rows."""
    lo = None if since is None else (since if since.day == 1 else _month_after(since))  # first whole month
    hi = None if until is None else (until + timedelta(days=1)).replace(day=1)  # whole months end before
    if lo is not None and hi is not None and lo >= hi:  # no whole month inside: days only
        return and_(fr.c.grain == "D", fr.c.period >= since, fr.c.period <= until)
    parts = [and_(fr.c.grain == "M", *([fr.c.period >= lo] if lo else []), *([fr.c.period < hi] if hi else []))]
    if since is not None and since < lo:
        parts.append(and_(fr.c.grain == "D", fr.c.period >= since, fr.c.period < lo))
    if until is not None and hi <= until:
        parts.append(and_(fr.c.grain == "D", fr.c.period >= hi, fr.c.period <= until))
    return or_(*parts)


def funnel_query(*, where, since=None, until=None, owner=None, team=None):
    q = select(fr.c.stage, fr.c.furthest_stage, fr.c.currency, func.sum(fr.c.n), func.sum(fr.c.amount_minor)).where(
        _rebind(where, fr), _periods(since, until))
    if owner:
        q = q.where(fr.c.owner_id == owner)
    if team:
        q = q.where(fr.c.team_id == team)
    return q.group_by(fr.c.stage, fr.c.furthest_stage, fr.c.currency).having(func.sum(fr.c.n) > 0)


def funnel_groups(session, **kw):
    """(stage, furthest_stage, currency, count, amount) as the GROUP BY over the raw rows returns them."""
    q = funnel_query(**kw)
    return [(s, f, c, int(n), Decimal(int(a)).scaleb(-2)) for s, f, c, n, a in session.execute(q).all()]


def forecast_query(*, where, owner=None, team=None):
    if isinstance(where, True_) and not owner and not team:
        q = select(cr.c.stage, cr.c.currency, cr.c.close_on, func.sum(cr.c.n), func.sum(cr.c.amount_minor)).where(
            cr.c.grain == "C")
    else:
        q = select(cr.c.stage, cr.c.currency, cr.c.close_on, func.sum(cr.c.n), func.sum(cr.c.amount_minor)).where(
            cr.c.grain == "O", _rebind(where, cr))
        if owner:
            q = q.where(cr.c.owner_id == owner)
        if team:
            q = q.where(cr.c.team_id == team)
    return q.group_by(cr.c.stage, cr.c.currency, cr.c.close_on).having(func.sum(cr.c.n) > 0)


def forecast_groups(session, **kw):
    """(stage, currency, expected_close, count, amount) as the GROUP BY over the raw open rows returns them."""
    q = forecast_query(**kw)
    return [(s, c, date.fromisoformat(close) if close else None, int(n), Decimal(int(a)).scaleb(-2))
            for s, c, close, n, a in session.execute(q).all()]


def rebuild(session) -> None:
    """Recompute both tables from the opportunities (after a bulk load, or to repair), in one statement
    each; lock the opportunities against writes meanwhile on PostgreSQL."""
    pg = session.get_bind().dialect.name == "postgresql"
    for sql in rebuild_sql(pg):
        session.execute(text(sql))


def rebuild_sql(pg: bool) -> list[str]:
    if pg:
        day = "(created_at AT TIME ZONE 'UTC')::date"
        month = "date_trunc('month', created_at AT TIME ZONE 'UTC')::date"
        minor = "(expected_amount * 100)::bigint"
        close = "coalesce(to_char(expected_close, 'YYYY-MM-DD'), '')"
    else:
        day, month = "date(created_at)", "strftime('%Y-%m-01', created_at)"
        minor = "CAST(round(expected_amount * 100) AS INTEGER)"
        close = "coalesce(expected_close, '')"
    stages = ", ".join(f"'{s}'" for s in pipeline.OPEN_STAGES)
    out = ["LOCK TABLE opportunities IN SHARE MODE"] if pg else []
    out += ["DELETE FROM funnel_rollup", "DELETE FROM forecast_rollup"]
    for grain, period in (("D", day), ("M", month)):
        out.append(
            "INSERT INTO funnel_rollup (grain, period, owner_id, team_id, stage, furthest_stage, currency, n, "
            f"amount_minor) SELECT '{grain}', {period}, owner_id, coalesce(team_id, ''), stage, furthest_stage, "
            f"currency, count(*), sum({minor}) FROM opportunities GROUP BY {period}, owner_id, coalesce(team_id, ''), "
            "stage, furthest_stage, currency")
    out.append(
        "INSERT INTO forecast_rollup (grain, owner_id, team_id, stage, currency, close_on, n, amount_minor) "
        f"SELECT 'O', owner_id, coalesce(team_id, ''), stage, currency, {close}, count(*), sum({minor}) "
        f"FROM opportunities WHERE stage IN ({stages}) "
        f"GROUP BY owner_id, coalesce(team_id, ''), stage, currency, {close}")
    out.append(
        "INSERT INTO forecast_rollup (grain, owner_id, team_id, stage, currency, close_on, n, amount_minor) "
        f"SELECT 'C', '', '', stage, currency, {close}, count(*), sum({minor}) FROM opportunities "
        f"WHERE stage IN ({stages}) GROUP BY stage, currency, {close}")
    return out
