"""Funnel, weighted forecast and sales by rep. Amounts are totalled per currency and in the base
currency (through the exchange rates); a currency without a rate is listed, never guessed."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal

from sqlalchemy import func, select

from .. import models
from . import money, rollup
from .pipeline import INDEX, OPEN_STAGES, PROBABILITY, STAGES

o, k = models.opportunities, models.contracts
FUNNEL_STAGES = STAGES[:5]  # lost is reported beside the funnel


def _period(q, column, since: date | None, until: date | None, is_datetime: bool):
    if since:
        q = q.where(column >= (datetime.combine(since, time.min, tzinfo=timezone.utc) if is_datetime else since))
    if until:
        q = q.where(column <= (datetime.combine(until, time.max, tzinfo=timezone.utc) if is_datetime else until))
    return q


def funnel_raw_query(*, where, since=None, until=None, owner=None, team=None):
    """The GROUP BY over the opportunities themselves (what the rollup replaces)."""
    q = select(o.c.stage, o.c.furthest_stage, o.c.currency, func.count(), func.sum(o.c.expected_amount)).where(where)
    q = _period(q, o.c.created_at, since, until, True)
    if owner:
        q = q.where(o.c.owner_id == owner)
    if team:
        q = q.where(o.c.team_id == team)
    return q.group_by(o.c.stage, o.c.furthest_stage, o.c.currency)


def funnel(session, *, where, since=None, until=None, owner=None, team=None, raw: bool = False) -> dict:
    """Per stage: opportunities now in it (count, amount) and how many ever reached it; conversion
    from each stage to the next = reached(next) / reached(this). Read from the rollup
    (domain/rollup.py: a number of rows that does not grow with the opportunities), or with `raw`
    (or a `where` on other columns than owner and team) aggregated from the opportunities; the two
    give the same numbers."""
    table = money.rates(session)
    kw = dict(where=where, since=since, until=until, owner=owner, team=team)
    groups = None
    if not raw:
        try:
            groups = rollup.funnel_groups(session, **kw)
        except rollup.NotCovered:
            pass
    if groups is None:
        groups = session.execute(funnel_raw_query(**kw)).all()
    now_in = {s: {"count": 0, "amount_base": Decimal(0), "amounts": {}} for s in STAGES}
    reached = {s: 0 for s in FUNNEL_STAGES}
    unconverted = set()
    for stage, furthest, currency, n, amount in groups:
        amount = Decimal(amount or 0)
        entry = now_in[stage]
        entry["count"] += n
        entry["amounts"][currency] = entry["amounts"].get(currency, Decimal(0)) + amount
        base = money.to_base(amount, currency, table)
        if base is None:
            unconverted.add(currency)
        else:
            entry["amount_base"] += base
        top = INDEX["won"] if stage == "won" else min(furthest, INDEX["negotiation"])
        for s in FUNNEL_STAGES:
            if INDEX[s] <= top:
                reached[s] += n
    stages = []
    for i, s in enumerate(FUNNEL_STAGES):
        nxt = FUNNEL_STAGES[i + 1] if i + 1 < len(FUNNEL_STAGES) else None
        conv = None
        if nxt and reached[s]:
            conv = (Decimal(reached[nxt]) / Decimal(reached[s])).quantize(Decimal("0.0001"))
        stages.append({"stage": s, "probability": PROBABILITY[s], "count": now_in[s]["count"],
                       "amount_base": now_in[s]["amount_base"],
                       "amounts": [{"currency": c, "amount": money.q(a, c)} for c, a in
                                   sorted(now_in[s]["amounts"].items())],
                       "reached": reached[s], "conversion_to_next": conv})
    lost = now_in["lost"]
    total = sum(e["count"] for e in now_in.values())
    win_rate = (Decimal(now_in["won"]["count"]) / Decimal(total)).quantize(Decimal("0.0001")) if total else None
    return {"base_currency": money.BASE_CURRENCY, "since": since, "until": until, "owner": owner, "team": team,
            "stages": stages, "lost": {"count": lost["count"], "amount_base": lost["amount_base"]},
            "total": total, "win_rate": win_rate, "unconverted_currencies": sorted(unconverted)}


def forecast_raw_query(*, where, owner=None, team=None):
    q = select(o.c.stage, o.c.currency, o.c.expected_close, func.count(), func.sum(o.c.expected_amount)).where(
        where, o.c.stage.in_(OPEN_STAGES))
    if owner:
        q = q.where(o.c.owner_id == owner)
    if team:
        q = q.where(o.c.team_id == team)
    return q.group_by(o.c.stage, o.c.currency, o.c.expected_close)


def forecast(session, *, where, owner=None, team=None, raw: bool = False) -> dict:
    """Weighted pipeline (amount × stage probability) of open opportunities by expected close month;
    those without an expected close date are under `unscheduled`. Summed per stage, currency and
    close date (from the rollup, or with `raw` from the opportunities: the same groups), then
    converted and weighted per group."""
    table = money.rates(session)
    groups = None
    if not raw:
        try:
            groups = rollup.forecast_groups(session, where=where, owner=owner, team=team)
        except rollup.NotCovered:
            pass
    if groups is None:
        groups = session.execute(forecast_raw_query(where=where, owner=owner, team=team)).all()
    months: dict[str, dict] = {}
    unconverted = set()
    for stage, currency, close, n, amount in groups:
        key = close.strftime("%Y-%m") if close else "unscheduled"
        m = months.setdefault(key, {"month": key, "count": 0, "pipeline_base": Decimal(0), "weighted_base": Decimal(0)})
        base = money.to_base(Decimal(amount or 0), currency, table)
        m["count"] += n
        if base is None:
            unconverted.add(currency)
            continue
        m["pipeline_base"] += base
        m["weighted_base"] += money.q(base * PROBABILITY[stage], money.BASE_CURRENCY)
    rows = sorted(months.values(), key=lambda m: (m["month"] == "unscheduled", m["month"]))
    return {"base_currency": money.BASE_CURRENCY, "months": rows,
            "total_weighted_base": sum((m["weighted_base"] for m in rows), Decimal(0)),
            "unconverted_currencies": sorted(unconverted)}


def sales_by_rep(session, *, where, since=None, until=None) -> dict:
    """Signed contracts per owner in the period (by signing date): count, amounts per currency,
    total in the base currency, and what has been collected."""
    table = money.rates(session)
    q = select(k.c.owner_id, k.c.currency, func.count(), func.sum(k.c.amount)).where(
        where, k.c.signed_on.is_not(None), k.c.status != "terminated")
    q = _period(q, k.c.signed_on, since, until, False).group_by(k.c.owner_id, k.c.currency)
    paid_q = select(k.c.owner_id, k.c.currency, func.sum(models.installments.c.paid)).join(
        models.installments, models.installments.c.contract_id == k.c.id).where(
        where, k.c.signed_on.is_not(None), k.c.status != "terminated")
    paid_q = _period(paid_q, k.c.signed_on, since, until, False).group_by(k.c.owner_id, k.c.currency)
    paid = {(r[0], r[1]): Decimal(r[2] or 0) for r in session.execute(paid_q).all()}
    reps: dict[str, dict] = {}
    unconverted = set()
    for owner, currency, n, amount in session.execute(q).all():
        rep = reps.setdefault(owner, {"owner_id": owner, "contracts": 0, "amounts": [], "amount_base": Decimal(0),
                                      "collected_base": Decimal(0)})
        amount = Decimal(amount or 0)
        rep["contracts"] += n
        rep["amounts"].append({"currency": currency, "amount": money.q(amount, currency)})
        base = money.to_base(amount, currency, table)
        got = money.to_base(paid.get((owner, currency), Decimal(0)), currency, table)
        if base is None:
            unconverted.add(currency)
        else:
            rep["amount_base"] += base
            rep["collected_base"] += got
    rows = sorted(reps.values(), key=lambda r: (-r["amount_base"], r["owner_id"]))
    return {"base_currency": money.BASE_CURRENCY, "since": since, "until": until, "reps": rows,
            "unconverted_currencies": sorted(unconverted)}
