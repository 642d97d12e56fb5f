"""Who sees which lead, and how much of it.

A sales rep sees the leads they own (another rep's lead is "not found", so existence does not
leak) and pooled leads masked; a sales manager sees their team's leads (teams whose `code` is the
token's `team` claim, and leads owned by those teams' members) and the pool; admin and general
managers see everything. Whoever sees the full phone or email of a lead they do not own is written
to the access log."""
from __future__ import annotations

from sqlalchemy import false, or_, select

from ..models import access_log, leads, team_members, teams
from . import normalise
from .errors import NotFound
from .records import get


def manager_team_ids(session, actor) -> list[int]:
    if not actor.team:
        return []
    return list(session.execute(select(teams.c.id).where(teams.c.code == actor.team)).scalars())


def visible_clause(session, actor, include_pool: bool = True):
    """A WHERE clause on `leads` for what this actor may see."""
    if actor.sees_all:
        return None
    parts = [leads.c.owner_id == actor.id] if actor.id else []
    if include_pool:
        parts.append(leads.c.status == "pooled")
    if actor.is_manager:
        ids = manager_team_ids(session, actor)
        if ids:
            parts.append(leads.c.team_id.in_(ids))
            parts.append(leads.c.owner_id.in_(select(team_members.c.user_id).where(team_members.c.team_id.in_(ids))))
    return or_(*parts) if parts else false()


def load(session, lead_id, actor, *, for_update: bool = False, include_pool: bool = True):
    row = get(session, lead_id, for_update=for_update)
    if row is None or not can_see(session, row, actor, include_pool):
        raise NotFound(f"No lead {lead_id}.")
    return row


def can_see(session, row, actor, include_pool: bool = True) -> bool:
    if actor.sees_all or (actor.id and row["owner_id"] == actor.id):
        return True
    if include_pool and row["status"] == "pooled":
        return True
    if actor.is_manager:
        ids = manager_team_ids(session, actor)
        if row["team_id"] in ids:
            return True
        if row["owner_id"] and ids and session.execute(select(team_members.c.user_id).where(
                team_members.c.team_id.in_(ids), team_members.c.user_id == row["owner_id"])).first():
            return True
    return False


def can_manage(session, row, actor) -> bool:
    """Owner, or a manager who sees the lead."""
    if actor.id and row["owner_id"] == actor.id:
        return True
    return actor.is_manager and can_see(session, row, actor, include_pool=True)


def present(row, actor, *, full: bool = False, session=None, now=None, path: str | None = None) -> dict:
    """The lead as this actor may see it. `full` shows a non-owner manager/admin the contact data
    (and logs it); otherwise non-owners see it masked."""
    out = dict(row)
    own = actor.id is not None and row["owner_id"] == actor.id
    reveal = own or (full and actor.is_manager and row["status"] != "pooled") or (full and actor.sees_all)
    if not reveal:
        out["phone"] = normalise.mask_phone(row["phone"])
        out["email"] = normalise.mask_email(row["email"])
        out["masked"] = True
    else:
        out["masked"] = False
        if not own and session is not None and (row["phone"] or row["email"]):
            shown = ",".join(f for f in ("phone", "email") if row[f])
            session.execute(access_log.insert().values(at=now, user_id=actor.id, user_name=actor.name,
                                                       lead_id=row["id"], fields=shown, path=path))
    return out
