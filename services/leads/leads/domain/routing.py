"""Routing: the first active rule by priority whose conditions all match picks the team; inside the
team the strategy picks an active member under capacity.

Fair under concurrency: the team row is locked (SELECT … FOR UPDATE) for the rest of the
transaction, and the round-robin cursor and per-member counts live in the database, so concurrent
intakes through any number of processes take turns."""
from __future__ import annotations

from sqlalchemy import func, select, update

from ..models import leads, routing_rules, team_members, teams
from . import cache
from .records import OPEN
from .util import is_postgres

STRATEGIES = ("round_robin", "weighted", "least_loaded")
CONDITION_FIELDS = ("province", "city", "industry", "source", "campaign_id")


def matches(conditions: dict, lead: dict) -> bool:
    for field in CONDITION_FIELDS:
        accepted = conditions.get(field)
        if accepted:
            value = lead.get(field)
            if value is None or str(value) not in {str(v) for v in accepted}:
                return False
    min_score = conditions.get("min_score")
    if isinstance(min_score, list):
        min_score = min(min_score) if min_score else None
    if min_score is not None and (lead.get("score") or 0) < int(min_score):
        return False
    return True


def _rules(session) -> list:
    return [tuple(r) for r in session.execute(select(routing_rules.c.conditions, routing_rules.c.team_id)
                                              .where(routing_rules.c.active.is_(True))
                                              .order_by(routing_rules.c.priority, routing_rules.c.id)).all()]


def choose_team(session, lead: dict):
    for conditions, team_id in cache.get(session, "routing_rules", _rules):
        if matches(conditions or {}, lead):
            return team_id
    return None


def open_counts(session, user_ids: list[str]) -> dict[str, int]:
    if not user_ids:
        return {}
    rows = session.execute(select(leads.c.owner_id, func.count()).where(
        leads.c.owner_id.in_(user_ids), leads.c.status.in_(OPEN)).group_by(leads.c.owner_id)).all()
    return dict(rows)


def pick_member(session, team_id):
    """Lock the team and choose a member; None when nobody is free. Counts the assignment."""
    return pick_many(session, team_id, 1)[0]


def pick_many(session, team_id, n: int) -> list:
    """Lock the team and choose members for `n` leads in turn (None where nobody is free), then
    write the counts and the cursor once."""
    # one query: the team's active members, with the team row locked for the rest of the transaction
    q = (select(teams.c.strategy, teams.c.rr_cursor, team_members)
         .join(team_members, team_members.c.team_id == teams.c.id)
         .where(teams.c.id == team_id, team_members.c.active.is_(True))
         .order_by(team_members.c.position, team_members.c.user_id))
    if is_postgres(session):
        q = q.with_for_update(of=teams)
    members = [dict(m) for m in session.execute(q).mappings().all()]
    if not members:
        return [None] * n
    strategy, rr_cursor = members[0]["strategy"], members[0]["rr_cursor"]
    needs_load = strategy == "least_loaded" or any(m["max_open_leads"] is not None for m in members)
    load = open_counts(session, [m["user_id"] for m in members]) if needs_load else {}
    taken = {m["user_id"]: 0 for m in members}
    cursor = rr_cursor

    def free(m):
        return m["max_open_leads"] is None or load.get(m["user_id"], 0) < m["max_open_leads"]

    picks = []
    for _ in range(n):
        chosen, before = None, cursor
        if strategy == "round_robin":
            for i in range(len(members)):
                idx = (cursor + i) % len(members)
                if free(members[idx]):
                    chosen, cursor = members[idx], idx + 1
                    break
        else:
            eligible = [m for m in members if free(m) and m["weight"] > 0]
            if eligible:
                if strategy == "weighted":
                    chosen = min(eligible, key=lambda m: ((m["assigned_count"] + 1) / m["weight"], m["position"]))
                else:  # least_loaded
                    chosen = min(eligible, key=lambda m: (load.get(m["user_id"], 0), m["assigned_count"],
                                                          m["position"]))
        if chosen is not None:
            chosen["assigned_count"] += 1
            load[chosen["user_id"]] = load.get(chosen["user_id"], 0) + 1
            taken[chosen["user_id"]] += 1
            picks.append({**chosen, "_team_id": team_id, "_cursor_before": before})
        else:
            picks.append(None)
    for user_id, k in taken.items():
        if k:
            session.execute(update(team_members).where(team_members.c.team_id == team_id,
                                                       team_members.c.user_id == user_id)
                            .values(assigned_count=team_members.c.assigned_count + k))
    if cursor != rr_cursor:
        session.execute(update(teams).where(teams.c.id == team_id).values(rr_cursor=cursor))
    return picks


def unpick(session, chosen: dict) -> None:
    """Give back a turn taken by pick_member in this transaction (the team row is still locked)."""
    session.execute(update(team_members).where(team_members.c.team_id == chosen["_team_id"],
                                               team_members.c.user_id == chosen["user_id"])
                    .values(assigned_count=team_members.c.assigned_count - 1))
    session.execute(update(teams).where(teams.c.id == chosen["_team_id"]).values(rr_cursor=chosen["_cursor_before"]))


def fair_start_count(session, team_id, weight: int) -> int:
    """The assigned count a member joining (or coming back to) a weighted team starts from, so they
    take their share from now on instead of catching up on everything they missed."""
    rows = session.execute(select(team_members.c.assigned_count, team_members.c.weight).where(
        team_members.c.team_id == team_id, team_members.c.active.is_(True), team_members.c.weight > 0)).all()
    if not rows:
        return 0
    per_weight = min(c / w for c, w in rows)
    return int(per_weight * weight)
