"""Teams, their members and routing rules (managed by sales managers and admins)."""
from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..models import routing_rules, team_members, teams
from . import cache
from .errors import Conflict, Forbidden, Invalid, NotFound
from .records import remember_user
from .routing import CONDITION_FIELDS, STRATEGIES, create_turns, fair_start_count


def _team(session, team_id) -> dict:
    row = session.execute(select(teams).where(teams.c.id == team_id)).mappings().first()
    if row is None:
        raise NotFound(f"No team {team_id}.")
    out = dict(row)
    out["members"] = [dict(m) for m in session.execute(select(team_members).where(team_members.c.team_id == team_id)
                                                       .order_by(team_members.c.position, team_members.c.user_id)).mappings()]
    return out


get = _team


def check_manages(session, team_id, actor) -> None:
    """A sales manager changes only their own team (the token's `team` is its code); admins and
    general managers change any. Another manager's team is visible to all, so this is a 403."""
    row = session.execute(select(teams.c.code).where(teams.c.id == team_id)).first()
    if row is None:
        raise NotFound(f"No team {team_id}.")
    if not actor.sees_all and row.code != actor.team:
        raise Forbidden(f"Team {team_id} is not yours to manage.")


def list_teams(session) -> list[dict]:
    return [_team(session, i) for i in session.execute(select(teams.c.id).order_by(teams.c.id)).scalars()]


def create(session, data: dict, now) -> dict:
    if data["strategy"] not in STRATEGIES:
        raise Invalid({"strategy": [f"Must be one of: {', '.join(STRATEGIES)}."]})
    users = [m["user_id"] for m in data.get("members", [])]
    if len(users) != len(set(users)):
        raise Invalid({"members": ["A user appears twice."]})
    try:
        with session.begin_nested():
            tid = session.execute(teams.insert().values(name=data["name"], code=data.get("code"),
                                                        strategy=data["strategy"], rr_cursor=0,
                                                        created_at=now)).inserted_primary_key[0]
    except IntegrityError:
        raise Conflict("A team with this name or code exists.")
    create_turns(session, tid)
    cache.clear()  # the team's strategy (routing.assign_round_robin)
    for pos, m in enumerate(data.get("members", [])):
        _add_member(session, tid, m, pos)
    return _team(session, tid)


def _add_member(session, team_id, m: dict, position: int) -> None:
    session.execute(team_members.insert().values(
        team_id=team_id, user_id=m["user_id"], name=m["name"], weight=m.get("weight", 1),
        max_open_leads=m.get("max_open_leads"), active=m.get("active", True), position=position,
        assigned_count=fair_start_count(session, team_id, m.get("weight", 1))))
    remember_user(session, m["user_id"], m["name"])


def update_team(session, team_id, data: dict) -> dict:
    _team(session, team_id)
    values = {k: v for k, v in data.items() if k in ("name", "code", "strategy") and v is not None}
    if "strategy" in values and values["strategy"] not in STRATEGIES:
        raise Invalid({"strategy": [f"Must be one of: {', '.join(STRATEGIES)}."]})
    if values:
        try:
            with session.begin_nested():
                session.execute(update(teams).where(teams.c.id == team_id).values(**values))
        except IntegrityError:
            raise Conflict("A team with this name or code exists.")
        cache.clear()
    return _team(session, team_id)


def add_member(session, team_id, m: dict) -> dict:
    _team(session, team_id)
    exists = session.execute(select(team_members.c.user_id).where(team_members.c.team_id == team_id,
                                                                  team_members.c.user_id == m["user_id"])).first()
    if exists:
        raise Conflict(f"{m['user_id']} is already a member.")
    pos = session.execute(select(func.coalesce(func.max(team_members.c.position), -1) + 1)
                          .where(team_members.c.team_id == team_id)).scalar_one()
    _add_member(session, team_id, m, pos)
    return _team(session, team_id)


def change_member(session, team_id, user_id: str, data: dict) -> dict:
    """Away (active=false), back (active=true), capacity, weight, name."""
    row = session.execute(select(team_members).where(team_members.c.team_id == team_id,
                                                     team_members.c.user_id == user_id)).mappings().first()
    if row is None:
        raise NotFound(f"No member {user_id} in team {team_id}.")
    values = {k: data[k] for k in ("name", "weight", "max_open_leads", "active") if k in data}
    if values.get("active") and not row["active"]:
        # back from absence: take a fair share from now on rather than catching up
        values["assigned_count"] = fair_start_count(session, team_id, values.get("weight", row["weight"]))
    if values:
        session.execute(update(team_members).where(team_members.c.team_id == team_id,
                                                   team_members.c.user_id == user_id).values(**values))
        if "name" in values:
            remember_user(session, user_id, values["name"])
    return _team(session, team_id)


def remove_member(session, team_id, user_id: str) -> None:
    n = session.execute(delete(team_members).where(team_members.c.team_id == team_id,
                                                   team_members.c.user_id == user_id)).rowcount
    if n != 1:
        raise NotFound(f"No member {user_id} in team {team_id}.")


def _check_conditions(conditions: dict) -> dict:
    bad = set(conditions) - set(CONDITION_FIELDS) - {"min_score"}
    if bad:
        raise Invalid({"conditions": [f"Unknown condition(s): {', '.join(sorted(bad))}."]})
    return conditions


def create_rule(session, data: dict, now) -> dict:
    _team(session, data["team_id"])
    rid = session.execute(routing_rules.insert().values(
        priority=data["priority"], conditions=_check_conditions(data.get("conditions") or {}), team_id=data["team_id"],
        active=data.get("active", True), created_at=now)).inserted_primary_key[0]
    cache.clear()
    return get_rule(session, rid)


def get_rule(session, rule_id) -> dict:
    row = session.execute(select(routing_rules).where(routing_rules.c.id == rule_id)).mappings().first()
    if row is None:
        raise NotFound(f"No routing rule {rule_id}.")
    return dict(row)


def list_rules(session) -> list[dict]:
    return [dict(r) for r in session.execute(select(routing_rules).order_by(routing_rules.c.priority,
                                                                             routing_rules.c.id)).mappings()]


def update_rule(session, rule_id, data: dict) -> dict:
    get_rule(session, rule_id)
    values = {k: v for k, v in data.items() if k in ("priority", "conditions", "team_id", "active")}
    if "conditions" in values:
        _check_conditions(values["conditions"] or {})
    if "team_id" in values:
        _team(session, values["team_id"])
    if values:
        session.execute(update(routing_rules).where(routing_rules.c.id == rule_id).values(**values))
    cache.clear()
    return get_rule(session, rule_id)


def delete_rule(session, rule_id) -> None:
    if session.execute(delete(routing_rules).where(routing_rules.c.id == rule_id)).rowcount != 1:
        raise NotFound(f"No routing rule {rule_id}.")
    cache.clear()
