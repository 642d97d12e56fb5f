"""Reading and writing one lead: the row, its history, the fields every lead event carries, and
display names of users."""
from __future__ import annotations

from sqlalchemy import select, update

from ..models import lead_history, leads, teams, users
from .util import upsert

OPEN = ("new", "contacted", "qualified")
STATUSES = OPEN + ("converted", "disqualified", "pooled")


def get(session, lead_id, for_update: bool = False):
    q = select(leads).where(leads.c.id == lead_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return session.execute(q).mappings().first()


def team_code(session, team_id, codes: dict | None = None) -> str | None:
    """The team's `code`: the identity provider's `team` claim, which is what the other services
    mean by a team (sales' visibility, notify's team managers, approvals). `team_id` is only this
    service's row id."""
    if team_id is None:
        return None
    if codes is not None and team_id in codes:
        return codes[team_id]
    code = session.execute(select(teams.c.code).where(teams.c.id == team_id)).scalar()
    if codes is not None:
        codes[team_id] = code
    return code


def event_fields(row, session, codes: dict | None = None) -> dict:
    return {"lead_id": str(row["id"]), "owner_id": row["owner_id"],
            "team_id": str(row["team_id"]) if row["team_id"] is not None else None,
            "team_code": team_code(session, row["team_id"], codes),
            "name": row["name"], "company": row["company"], "source": row["source"],
            "campaign_id": str(row["campaign_id"]) if row["campaign_id"] is not None else None,
            "province": row["province"], "city": row["city"], "industry": row["industry"],
            "score": row["score"], "tier": row["tier"]}


def history(session, lead_id, kind: str, now, actor=None, *, from_owner=None, to_owner=None, reason=None) -> None:
    session.execute(lead_history.insert().values(
        lead_id=lead_id, at=now, kind=kind, actor_id=getattr(actor, "id", None),
        actor_name=getattr(actor, "name", None), from_owner_id=from_owner, to_owner_id=to_owner,
        reason=(reason or None) and str(reason)[:500]))


def history_row(lead_id, at, actor, kind: str, from_owner=None, to_owner=None, reason=None) -> dict:
    return dict(lead_id=lead_id, at=at, kind=kind, actor_id=getattr(actor, "id", None),
                actor_name=getattr(actor, "name", None), from_owner_id=from_owner, to_owner_id=to_owner,
                reason=(reason or None) and str(reason)[:500])


def history_many(session, lead_id, now, actor, entries: list[dict]) -> None:
    """Several history rows of one lead in one statement."""
    session.execute(lead_history.insert(), [history_row(lead_id, now, actor, **e) for e in entries])


def remember_user(session, user_id: str | None, name: str | None) -> None:
    if user_id and name:
        upsert(session, users, {"user_id": user_id}, {"name": name[:200]})


def display_name(session, user_id: str | None) -> str | None:
    if not user_id:
        return None
    return session.execute(select(users.c.name).where(users.c.user_id == user_id)).scalar() or user_id


def open_count(session, user_id: str) -> int:
    from sqlalchemy import func
    return session.execute(select(func.count()).select_from(leads).where(
        leads.c.owner_id == user_id, leads.c.status.in_(OPEN))).scalar_one()


def set_owner(uow, row, user_id: str, name: str | None, now, *, reason: str, kind: str, actor=None,
              team_id=None, note: str | None = None, emit: bool = True):
    """Give a lead to `user_id`; kept in the history and announced as lead.assigned."""
    session = uow.session
    values = dict(owner_id=user_id, owner_name=name or display_name(session, user_id), assigned_at=now,
                  updated_at=now, warned_for=None, pooled_at=None, locked=False,
                  status=row["stage"] if row["status"] == "pooled" else row["status"])
    if team_id is not None:
        values["team_id"] = team_id
    session.execute(update(leads).where(leads.c.id == row["id"]).values(**values))
    from . import load  # load imports this module
    load.moved(session, row["owner_id"], row["status"], user_id, values["status"])
    history(session, row["id"], kind, now, actor, from_owner=row["owner_id"], to_owner=user_id, reason=note or reason)
    new = get(session, row["id"])
    if emit:
        uow.emit("lead.assigned", {**event_fields(new, uow.session), "previous_owner_id": row["owner_id"], "reason": reason,
                                   "by_user_id": getattr(actor, "id", None)},
                 aggregate_type="lead", aggregate_id=row["id"])
    return new
