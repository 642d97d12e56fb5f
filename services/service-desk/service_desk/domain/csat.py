"""Satisfaction surveys: a one-time token per resolution, answered once, within 14 days, with no
login. Only the token's SHA-256 is stored, so a database reader cannot answer for the customer."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from ..models import csat_requests, tickets
from . import customers
from .common import DomainError, aware

VALID_FOR = timedelta(days=14)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_request(session, ticket_id: int, customer_id: str, now: datetime) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = now + VALID_FOR
    session.execute(csat_requests.insert().values(token_hash=_hash(token), ticket_id=ticket_id, customer_id=customer_id,
                                                  created_at=now, expires_at=expires))
    return token, expires


def _find(session, token: str, lock: bool = False):
    if not token or len(token) > 200:
        raise DomainError("not_found", "No such survey.")
    q = select(csat_requests).where(csat_requests.c.token_hash == _hash(token))
    row = session.execute(q.with_for_update() if lock else q).mappings().first()
    if row is None:
        raise DomainError("not_found", "No such survey.")
    return row


def describe(session, token: str, now: datetime) -> dict:
    """What the survey page shows: the ticket's subject and whether an answer is still accepted."""
    row = _find(session, token)
    subject = session.execute(select(tickets.c.subject).where(tickets.c.id == row["ticket_id"])).scalar()
    return {"ticket_id": row["ticket_id"], "subject": subject, "expires_at": aware(row["expires_at"]),
            "answered": row["submitted_at"] is not None, "expired": now > aware(row["expires_at"])}


def submit(uow, token: str, score: int, comment: str | None, now: datetime) -> dict:
    session = uow.session
    row = _find(session, token, lock=True)
    if now > aware(row["expires_at"]):
        raise DomainError("gone", "This survey closed 14 days after the ticket was resolved.")
    res = session.execute(csat_requests.update().where(csat_requests.c.id == row["id"],
                                                       csat_requests.c.submitted_at.is_(None))
                          .values(submitted_at=now, score=score, comment=comment))
    if res.rowcount != 1:
        raise DomainError("conflict", "This survey has already been answered.")
    owner = (customers.get(session, row["customer_id"]) or {}).get("owner_id")
    uow.emit("csat.submitted", {"ticket_id": str(row["ticket_id"]), "customer_id": row["customer_id"],
                                "owner_id": owner, "score": score, "comment": comment},
             aggregate_type="ticket", aggregate_id=row["ticket_id"])
    from .common import record
    record(session, row["ticket_id"], now, "csat_submitted", None, score=score)
    return {"ticket_id": row["ticket_id"], "score": score, "comment": comment, "submitted_at": now}
