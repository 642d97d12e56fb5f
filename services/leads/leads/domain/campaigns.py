"""Campaigns, their costs, and ROI: leads, converted leads, won contracts and revenue (from
contract.signed events that carry the lead or the campaign), cost, cost per lead, ROI.

Revenue and cost are summed in the campaign's currency; contracts signed in another currency are
counted but reported apart (`revenue_other_currencies`), never converted at a guessed rate."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from ..models import campaign_costs, campaigns, contracts, leads
from .errors import Invalid, NotFound
from .intake import SOURCES

CENT = Decimal("0.01")


def create(session, data: dict, now) -> dict:
    if data["source"] not in SOURCES:
        raise Invalid({"source": [f"Must be one of: {', '.join(SOURCES)}."]})
    if data.get("starts_on") and data.get("ends_on") and data["ends_on"] < data["starts_on"]:
        raise Invalid({"ends_on": ["Ends before it starts."]})
    cid = session.execute(campaigns.insert().values(**data, created_at=now)).inserted_primary_key[0]
    return get(session, cid)


def get(session, campaign_id) -> dict:
    row = session.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return dict(row)


def list_all(session) -> list[dict]:
    return [dict(r) for r in session.execute(select(campaigns).order_by(campaigns.c.id)).mappings()]


def add_cost(session, campaign_id, data: dict, actor, now) -> dict:
    camp = get(session, campaign_id)
    if data.get("currency") and data["currency"] != camp["currency"]:
        raise Invalid({"currency": [f"Costs are kept in the campaign's currency ({camp['currency']})."]})
    if data["amount"] <= 0:
        raise Invalid({"amount": ["Must be more than zero."]})
    cid = session.execute(campaign_costs.insert().values(
        campaign_id=campaign_id, amount=data["amount"], incurred_on=data["incurred_on"], note=data.get("note"),
        created_by=actor.id, created_at=now)).inserted_primary_key[0]
    return {"id": cid, "campaign_id": campaign_id, "currency": camp["currency"], **data}


def _ratio(a: Decimal, b: Decimal | int):
    return None if not b else (Decimal(a) / Decimal(b))


def roi(session, campaign_id) -> dict:
    camp = get(session, campaign_id)
    n_leads = session.execute(select(func.count()).select_from(leads).where(leads.c.campaign_id == campaign_id)).scalar_one()
    converted = session.execute(select(func.count()).select_from(leads).where(
        leads.c.campaign_id == campaign_id, leads.c.converted_at.is_not(None))).scalar_one()
    cost = Decimal(session.execute(select(func.coalesce(func.sum(campaign_costs.c.amount), 0)).where(
        campaign_costs.c.campaign_id == campaign_id)).scalar_one())
    rows = session.execute(select(contracts.c.currency, func.count(), func.sum(contracts.c.amount)).where(
        contracts.c.campaign_id == campaign_id).group_by(contracts.c.currency)).all()
    won = sum(r[1] for r in rows)
    revenue = sum((Decimal(r[2]) for r in rows if r[0] == camp["currency"]), Decimal(0))
    other = {r[0]: str(Decimal(r[2]).quantize(CENT)) for r in rows if r[0] != camp["currency"]}
    cpl = _ratio(cost, n_leads)
    ratio = _ratio(revenue - cost, cost)
    return {
        "campaign_id": campaign_id, "name": camp["name"], "source": camp["source"], "currency": camp["currency"],
        "budget": camp["budget"], "leads": n_leads, "converted_leads": converted, "won_contracts": won,
        "revenue": revenue.quantize(CENT), "cost": cost.quantize(CENT),
        "cost_per_lead": cpl.quantize(CENT, ROUND_HALF_UP) if cpl is not None else None,
        "roi": ratio.quantize(Decimal("0.0001"), ROUND_HALF_UP) if ratio is not None else None,
        "revenue_other_currencies": other,
    }


def by_source(session) -> list[dict]:
    """Per source: leads, converted, won contracts and revenue (per currency), campaign cost."""
    out = {s: {"source": s, "leads": 0, "converted_leads": 0, "won_contracts": 0, "revenue": {}, "cost": {}}
           for s in SOURCES}
    for source, n, conv in session.execute(select(leads.c.source, func.count(), func.count(leads.c.converted_at))
                                           .group_by(leads.c.source)).all():
        out.setdefault(source, {"source": source, "leads": 0, "converted_leads": 0, "won_contracts": 0,
                                "revenue": {}, "cost": {}})
        out[source].update(leads=n, converted_leads=conv)
    for source, cur, n, total in session.execute(select(contracts.c.source, contracts.c.currency, func.count(),
                                                        func.sum(contracts.c.amount))
                                                 .group_by(contracts.c.source, contracts.c.currency)).all():
        if source in out:
            out[source]["won_contracts"] += n
            out[source]["revenue"][cur] = str(Decimal(total).quantize(CENT))
    for source, cur, total in session.execute(select(campaigns.c.source, campaigns.c.currency,
                                                     func.sum(campaign_costs.c.amount))
                                              .join(campaign_costs, campaign_costs.c.campaign_id == campaigns.c.id)
                                              .group_by(campaigns.c.source, campaigns.c.currency)).all():
        if source in out:
            out[source]["cost"][cur] = str(Decimal(total).quantize(CENT))
    return list(out.values())
