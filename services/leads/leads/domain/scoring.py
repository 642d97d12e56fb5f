"""Rule-based lead score 0–100 and tier A/B/C/D, from configurable weights (kept in the `config`
table under "scoring"; `DEFAULT` until an admin changes them)."""
from __future__ import annotations

import copy

from sqlalchemy import select

from ..models import config
from . import cache
from .util import upsert

DEFAULT = {
    # points for each piece of contact data present
    "completeness": {"name": 10, "phone": 15, "email": 10, "company": 10, "city": 5, "industry": 5},
    # points by source
    "source": {"referral": 20, "visit": 18, "phone_in": 15, "exhibition": 12, "website": 10, "wechat": 10,
               "ad_platform": 8, "import": 5, "other": 3},
    # fit: points when the industry / province is one the company targets
    "industry_fit": {"points": 15, "industries": []},
    "region_fit": {"points": 10, "provinces": []},
    # minimum score of each tier (the rest is D)
    "tiers": {"A": 75, "B": 55, "C": 35},
}


def load(session) -> dict:
    row = session.execute(select(config.c.value).where(config.c.key == "scoring")).scalar()
    return merge(DEFAULT, row or {})


def merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (change or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def cached(session) -> dict:
    return cache.get(session, "scoring", load)


def save(session, value: dict, now) -> dict:
    merged = merge(DEFAULT, value)
    upsert(session, config, {"key": "scoring"}, {"value": merged, "updated_at": now})
    cache.clear()
    return merged


def score(lead: dict, weights: dict) -> tuple[int, str]:
    points = 0
    for field, pts in weights["completeness"].items():
        if lead.get(field):
            points += int(pts)
    points += int(weights["source"].get(lead.get("source") or "other", 0))
    fit = weights["industry_fit"]
    if lead.get("industry") and lead["industry"] in fit.get("industries", []):
        points += int(fit["points"])
    fit = weights["region_fit"]
    if lead.get("province") and lead["province"] in fit.get("provinces", []):
        points += int(fit["points"])
    points = max(0, min(100, points))
    return points, tier(points, weights)


def tier(points: int, weights: dict) -> str:
    for name in ("A", "B", "C"):
        if points >= int(weights["tiers"][name]):
            return name
    return "D"
