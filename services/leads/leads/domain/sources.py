"""Public intake (company website, ad platforms): each source has a secret key, stored only as its
SHA-256. Requests are rate-limited per key with a fixed one-minute window counted in the database
(`rate_windows`, one upserted row per key and minute), so the limit holds across processes."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from ..models import campaigns, rate_windows, sources
from .errors import Invalid, NotFound, RateLimited
from .intake import SOURCES
from .util import insert_for


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session, data: dict, now) -> dict:
    if data["source"] not in SOURCES:
        raise Invalid({"source": [f"Must be one of: {', '.join(SOURCES)}."]})
    cid = data.get("campaign_id")
    if cid is not None and session.execute(select(campaigns.c.id).where(campaigns.c.id == cid)).first() is None:
        raise Invalid({"campaign_id": [f"No campaign {cid}."]})
    key = "src_" + secrets.token_urlsafe(24)
    sid = session.execute(sources.insert().values(
        name=data["name"], source=data["source"], campaign_id=data.get("campaign_id"), key_hash=_hash(key),
        rate_per_minute=data.get("rate_per_minute") or 60, active=True, created_at=now)).inserted_primary_key[0]
    return {**get(session, sid), "key": key}


def get(session, source_id) -> dict:
    row = session.execute(select(sources).where(sources.c.id == source_id)).mappings().first()
    if row is None:
        raise NotFound(f"No source {source_id}.")
    return {k: v for k, v in row.items() if k != "key_hash"}


def list_all(session) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "key_hash"}
            for r in session.execute(select(sources).order_by(sources.c.id)).mappings()]


def by_key(session, key: str):
    row = session.execute(select(sources).where(sources.c.key_hash == _hash(key), sources.c.active.is_(True))).mappings().first()
    if row is None:
        raise NotFound("Unknown source key.")
    return row


def hit(session, source_row, now) -> None:
    """Count one request in the current minute; RateLimited past the source's limit."""
    window = now.replace(second=0, microsecond=0)
    stmt = insert_for(session, rate_windows).values(source_id=source_row["id"], window_start=window, hits=1)
    stmt = stmt.on_conflict_do_update(index_elements=["source_id", "window_start"],
                                      set_={"hits": rate_windows.c.hits + 1}).returning(rate_windows.c.hits)
    hits = session.execute(stmt).scalar_one()
    # old windows are of no use: drop them now and then
    if hits == 1:
        session.execute(delete(rate_windows).where(rate_windows.c.source_id == source_row["id"],
                                                   rate_windows.c.window_start < window - timedelta(minutes=5)))
    if hits > source_row["rate_per_minute"]:
        retry = int((window + timedelta(minutes=1) - now).total_seconds()) + 1
        raise RateLimited("Too many requests for this source key; slow down.", retry_after=retry)
