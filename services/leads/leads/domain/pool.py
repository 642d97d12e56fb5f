"""The shared pool (公海): claiming, releasing, locking, manual assignment, and recycling leads whose
owner sat on them.

A claim is one conditional UPDATE (… WHERE status = 'pooled'): of several simultaneous claimers
exactly one changes a row; the others get 409."""
from __future__ import annotations

import zlib
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update

from ..models import lead_history, leads, team_members
from . import access, load, policy
from .errors import Conflict, Forbidden, NotFound
from .records import OPEN, display_name, event_fields, get, history, open_count, remember_user, set_owner
from .util import aware

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")  # the "day" of the daily claim limit


def capacity(session, user_id: str) -> int | None:
    """A rep's max_open_leads: the smallest over their active memberships (None: no limit)."""
    caps = [c for c in session.execute(select(team_members.c.max_open_leads).where(
        team_members.c.user_id == user_id, team_members.c.active.is_(True))).scalars() if c is not None]
    return min(caps) if caps else None


def team_of(session, user_id: str):
    return session.execute(select(team_members.c.team_id).where(team_members.c.user_id == user_id)
                           .order_by(team_members.c.active.desc(), team_members.c.team_id)).scalar()


def claims_today(session, user_id: str, now: datetime) -> int:
    local = now.astimezone(BUSINESS_TZ)
    start = datetime.combine(local.date(), time(0), BUSINESS_TZ)
    return session.execute(select(func.count()).select_from(lead_history).where(
        lead_history.c.actor_id == user_id, lead_history.c.kind == "claimed", lead_history.c.at >= start)).scalar_one()


LOST_RACE_WINDOW = timedelta(minutes=10)


def _just_left_the_pool(session, lead_id, now) -> bool:
    """A claimer who lost the race no longer sees the lead (it is someone's now): they get 409, as
    they saw it in the pool a moment ago; a lead that left the pool long ago stays "not found"."""
    return session.execute(select(lead_history.c.id).where(
        lead_history.c.lead_id == lead_id, lead_history.c.from_owner_id.is_(None),
        lead_history.c.at >= now - LOST_RACE_WINDOW,
        or_(lead_history.c.kind == "claimed",  # taken from the pool by a rep or a manager's assignment
            and_(lead_history.c.kind == "assigned", lead_history.c.reason.not_in(("auto", "entered by owner")))))
        .limit(1)).first() is not None


def serialise_rep(session, user_id: str) -> None:
    """One rep's claims run one at a time (until the transaction ends), so two parallel claims
    cannot both pass the daily-limit and capacity checks that follow. SQLite transactions are
    serialised already (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(zlib.crc32(f"leads:rep:{user_id}".encode()))))


def claim(uow, lead_id, actor, now) -> dict:
    session = uow.session
    row = get(session, lead_id)
    if row is None:
        raise NotFound(f"No lead {lead_id}.")
    if not access.can_see(session, row, actor):
        if _just_left_the_pool(session, row["id"], now):
            raise Conflict("Someone else claimed this lead first.", reason="taken")
        raise NotFound(f"No lead {lead_id}.")
    if row["status"] != "pooled":
        raise Conflict("The lead is not in the pool (someone else has it).", status_now=row["status"])
    pol = policy.load(session, row["team_id"])
    if not actor.is_manager and pol["new_entry_embargo_hours"]:
        free_at = aware(row["pooled_at"]) + timedelta(hours=float(pol["new_entry_embargo_hours"]))
        if now < free_at:
            raise Conflict("The lead has just entered the pool and cannot be claimed yet.",
                           reason="embargo", claimable_at=free_at.isoformat())
    if row["cooldown_user_id"] == actor.id and row["cooldown_until"] and now < aware(row["cooldown_until"]):
        raise Conflict("This lead was recycled from you; you cannot claim it back yet.", reason="cooldown",
                       claimable_at=aware(row["cooldown_until"]).isoformat())
    serialise_rep(session, actor.id)
    if claims_today(session, actor.id, now) >= int(pol["daily_claim_limit"]):
        raise Conflict(f"You have reached today's claim limit ({pol['daily_claim_limit']}).", reason="daily_limit")
    cap = capacity(session, actor.id)
    if cap is not None and open_count(session, actor.id) >= cap:
        raise Conflict(f"You already hold {cap} open leads, your maximum.", reason="capacity")
    won = session.execute(update(leads).where(leads.c.id == row["id"], leads.c.status == "pooled").values(
        status=row["stage"], owner_id=actor.id, owner_name=actor.name, assigned_at=now, pooled_at=None,
        warned_for=None, cooldown_user_id=None, cooldown_until=None, locked=False, updated_at=now,
        team_id=row["team_id"] if row["team_id"] is not None else team_of(session, actor.id))).rowcount
    if won != 1:
        raise Conflict("Someone else claimed this lead first.", reason="taken")
    load.moved(session, None, "pooled", actor.id, row["stage"])
    remember_user(session, actor.id, actor.name)
    history(session, row["id"], "claimed", now, actor, to_owner=actor.id, reason="claim")
    new = get(session, row["id"])
    uow.emit("lead.assigned", {**event_fields(new, uow.session), "previous_owner_id": None, "reason": "claim",
                               "by_user_id": actor.id}, aggregate_type="lead", aggregate_id=row["id"])
    return dict(new)


def to_pool(session, row, now, *, kind: str, actor, reason: str, cooldown: timedelta | None = None) -> int:
    """Conditional: only if the lead still has the owner and status we read."""
    values = dict(status="pooled", stage=row["status"] if row["status"] in OPEN else row["stage"], owner_id=None,
                  owner_name=None, pooled_at=now, warned_for=None, locked=False, updated_at=now)
    if cooldown is not None:
        values.update(cooldown_user_id=row["owner_id"], cooldown_until=now + cooldown)
    n = session.execute(update(leads).where(leads.c.id == row["id"], leads.c.owner_id == row["owner_id"],
                                            leads.c.status == row["status"]).values(**values)).rowcount
    if n == 1:
        load.moved(session, row["owner_id"], row["status"], None, "pooled")
        history(session, row["id"], kind, now, actor, from_owner=row["owner_id"], reason=reason)
    return n


def release(uow, lead_id, actor, reason: str, now) -> dict:
    session = uow.session
    row = access.load(session, lead_id, actor, for_update=True)
    if row["status"] not in OPEN:
        raise Conflict(f"A {row['status']} lead cannot be released.", status_now=row["status"])
    if not access.can_manage(session, row, actor):
        raise Forbidden("Only the lead's owner or their manager may release it.")
    if to_pool(session, row, now, kind="released", actor=actor, reason=reason) != 1:
        raise Conflict("The lead changed meanwhile; try again.")
    return dict(get(session, row["id"]))


def set_lock(uow, lead_id, actor, locked: bool, now) -> dict:
    session = uow.session
    row = access.load(session, lead_id, actor, for_update=True)
    if not access.can_manage(session, row, actor) or row["status"] not in OPEN:
        raise Conflict("Only an open lead you own can be locked.", status_now=row["status"])
    if locked and not row["locked"]:
        quota = int(policy.load(session, row["team_id"])["lock_quota"])
        held = session.execute(select(func.count()).select_from(leads).where(
            leads.c.owner_id == row["owner_id"], leads.c.locked.is_(True))).scalar_one()
        if held >= quota:
            raise Conflict(f"The owner already has {held} locked leads (quota {quota}).", reason="lock_quota")
    session.execute(update(leads).where(leads.c.id == row["id"]).values(locked=locked, updated_at=now))
    history(session, row["id"], "locked" if locked else "unlocked", now, actor)
    return dict(get(session, row["id"]))


def assign(uow, lead_id, actor, user_id: str, reason: str, now) -> dict:
    """A manager gives a lead to someone: `manual` from the pool, `transfer` from another owner."""
    session = uow.session
    row = access.load(session, lead_id, actor, for_update=True)
    if row["status"] not in OPEN + ("pooled",):
        raise Conflict(f"A {row['status']} lead cannot be assigned.", status_now=row["status"])
    if row["owner_id"] == user_id:
        raise Conflict("The lead already belongs to this user.")
    member = session.execute(select(team_members.c.team_id, team_members.c.name).where(
        team_members.c.user_id == user_id).order_by(team_members.c.active.desc())).first()
    if row["status"] == "pooled":
        n = session.execute(update(leads).where(leads.c.id == row["id"], leads.c.status == "pooled")
                            .values(cooldown_user_id=None, cooldown_until=None)).rowcount
        if n != 1:
            raise Conflict("Someone else claimed this lead first.", reason="taken")
    kind, why = ("transferred", "transfer") if row["owner_id"] else ("assigned", "manual")
    name = member.name if member else display_name(session, user_id)
    return dict(set_owner(uow, row, user_id, name, now, reason=why, kind=kind, actor=actor,
                          team_id=member.team_id if member else None, note=reason))
