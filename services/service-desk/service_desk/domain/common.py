"""Small helpers the domain modules share."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from ..models import ticket_history

TYPES = ("complaint", "suggestion", "inquiry", "incident", "onboarding")
QUEUE_OF_TYPE = {"complaint": "complaints", "suggestion": "suggestions", "inquiry": "inquiries",
                 "incident": "incidents", "onboarding": "onboarding"}
QUEUES = tuple(QUEUE_OF_TYPE.values())
PRIORITIES = ("urgent", "high", "normal", "low")
CHANNELS = ("phone", "email", "web", "wechat", "api")
STATUSES = ("new", "open", "pending", "resolved", "closed")
GOLD = "gold"


class DomainError(Exception):
    """A rule was broken: `kind` is conflict, not_found, forbidden or gone (the API maps it)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def utc_now(clock) -> datetime:
    """The clock's time in UTC (SQLite keeps no offset: every stored time must be UTC)."""
    return clock.now().astimezone(timezone.utc)


def record(session, ticket_id: int, at: datetime, kind: str, actor_id: str | None = None, **data) -> None:
    session.execute(ticket_history.insert().values(ticket_id=ticket_id, at=at, kind=kind, actor_id=actor_id,
                                                   data=data or None))


def history(session, ticket_id: int) -> list[dict]:
    rows = session.execute(select(ticket_history).where(ticket_history.c.ticket_id == ticket_id)
                           .order_by(ticket_history.c.at, ticket_history.c.id)).mappings().all()
    return [{"at": aware(r["at"]), "kind": r["kind"], "actor_id": r["actor_id"], "data": r["data"] or {}} for r in rows]
