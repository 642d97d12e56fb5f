"""Routing: the first active rule by priority whose conditions all match picks the team; inside the
team the strategy picks an active member under capacity.

Fair under concurrency without a team lock: round robin takes its turn from a per-team sequence
(`nextval`, never blocks, never rolled back) after the lead's dedupe keys are in, and the capacity
cap is a conditional upsert of the member's open-lead counter (`owner_loads`) done in the same
statement that gives them the lead, late in the transaction. Weighted and least-loaded teams, which
choose by counts, lock the team row for the rest of the transaction. See README "Fair distribution"."""
from __future__ import annotations

from sqlalchemy import Integer, String, bindparam, column, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..models import leads, owner_loads, routing_rules, team_members, teams
from . import cache, load
from .util import built, driver_execute, is_postgres

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


def turn_sequence(team_id) -> str:
    """The PostgreSQL sequence round robin takes its turns from (one per team)."""
    return f"leads_team_{int(team_id)}_turn"


def create_turns(session, team_id, start: int = 0) -> None:
    """A new team's turn sequence (PostgreSQL; on SQLite turns come from `teams.rr_cursor`, writers
    being serialised anyway)."""
    if is_postgres(session):
        session.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {turn_sequence(team_id)} MINVALUE 0 START {int(start)}"))


def _turns(session, team_id, n: int) -> list[int]:
    """`n` turns of the team's round robin. On PostgreSQL a sequence: no lock, never rolled back."""
    if is_postgres(session):
        return list(session.execute(text(f"SELECT nextval('{turn_sequence(team_id)}') FROM generate_series(1, :n)"),
                                    {"n": n}).scalars())
    end = session.execute(built(session, "turns", lambda _: (
        update(teams).where(teams.c.id == bindparam("p_team")).values(
            rr_cursor=teams.c.rr_cursor + bindparam("p_n", type_=Integer)).returning(teams.c.rr_cursor))),
        {"p_team": team_id, "p_n": n}).scalar_one()
    return list(range(end - n, end))


def team_snapshot(session, team_id, *, lock: bool = False, turn: bool = False) -> list[dict]:
    """The team's active members with their open-lead counts (and the team's strategy and code), in
    one query and without a lock; `lock` locks the team row (weighted, least loaded); `turn` also
    takes one round-robin turn in the same query (PostgreSQL), as `_turn` of every row."""
    pg = is_postgres(session)
    if turn and pg:  # the team's own sequence is in the statement
        return [dict(m) for m in session.execute(_snapshot(lock, team_id), {"p_team": team_id}).mappings().all()]
    q = built(session, f"snapshot:{lock and pg}", lambda _: _snapshot(lock and pg))
    return [dict(m) for m in session.execute(q, {"p_team": team_id}).mappings().all()]


def _snapshot(lock: bool, turn_of=None):
    cols = [teams.c.strategy, teams.c.code.label("_team_code"), team_members,
            func.coalesce(owner_loads.c.open_leads, 0).label("_load")]
    if turn_of is not None:
        cols.append(text(f"(SELECT nextval('{turn_sequence(turn_of)}')) AS _turn"))
    q = (select(*cols).select_from(teams.join(team_members, team_members.c.team_id == teams.c.id)
                                   .outerjoin(owner_loads, owner_loads.c.user_id == team_members.c.user_id))
         .where(teams.c.id == bindparam("p_team"), team_members.c.active.is_(True))
         .order_by(team_members.c.position, team_members.c.user_id))
    return q.with_for_update(of=teams) if lock else q


def _count_assigned(session, team_id, user_id: str, k: int) -> None:
    session.execute(built(session, "count assigned", lambda _: (
        update(team_members).where(team_members.c.team_id == bindparam("p_team"),
                                   team_members.c.user_id == bindparam("p_user"))
        .values(assigned_count=team_members.c.assigned_count + bindparam("p_k", type_=Integer)))),
        {"p_team": team_id, "p_user": user_id, "p_k": k})


def _free(m) -> bool:
    return not m.get("_full") and (m["max_open_leads"] is None or m["_load"] < m["max_open_leads"])


def _choose(strategy: str, members: list[dict], turn: int | None):
    """The member for one lead among `members` (their `_load` as known so far), or None."""
    if strategy == "round_robin":
        free = [m for m in members if _free(m)]
        return free[turn % len(free)] if free else None
    eligible = [m for m in members if _free(m) and m["weight"] > 0]
    if not eligible:
        return None
    if strategy == "weighted":
        return min(eligible, key=lambda m: ((m["assigned_count"] + 1) / m["weight"], m["position"]))
    return min(eligible, key=lambda m: (m["_load"], m["assigned_count"], m["position"]))  # least_loaded


def pick_many(session, team_id, n: int) -> list:
    """Members for `n` leads in turn (None where nobody is free), their places reserved (`load`) and
    their assigned counts written. Round robin takes its turns from the team's sequence without a
    lock (the turn is the index into the members under their cap); weighted and least loaded lock
    the team row for the rest of the transaction, as they choose by counts."""
    members = team_snapshot(session, team_id)
    if not members:
        return [None] * n
    strategy = members[0]["strategy"]
    if strategy != "round_robin":
        members = team_snapshot(session, team_id, lock=True)
        if not members:
            return [None] * n
    turns = _turns(session, team_id, n) if strategy == "round_robin" else [None] * n
    by_user = {m["user_id"]: m for m in members}
    picks: list = [None] * n
    for i, turn in enumerate(turns):
        chosen = _choose(strategy, members, turn)
        if chosen is not None:
            chosen["_load"] += 1
            chosen["assigned_count"] += 1
            picks[i] = chosen
    # reserve the places, one statement per member; a member who filled up meanwhile (a concurrent
    # intake or claim) gives their leads to the others or the pool
    taken: dict[str, int] = {}
    for m in picks:
        if m is not None:
            taken[m["user_id"]] = taken.get(m["user_id"], 0) + 1
    failed = [u for u, k in taken.items() if not load.reserve(session, u, by_user[u]["max_open_leads"], k)]
    if failed:
        for u in failed:
            by_user[u]["_full"] = True  # chosen no more
        redo = [i for i, m in enumerate(picks) if m is not None and m["user_id"] in failed]
        for i in redo:
            chosen = _choose(strategy, members, turns[i])
            if chosen is not None and load.reserve(session, chosen["user_id"], chosen["max_open_leads"]):
                chosen["_load"] += 1
                chosen["assigned_count"] += 1
                taken[chosen["user_id"]] = taken.get(chosen["user_id"], 0) + 1
                picks[i] = chosen
            else:
                if chosen is not None:
                    chosen["_full"] = True
                picks[i] = None
        for u in failed:
            taken.pop(u, None)
    for user_id, k in taken.items():
        _count_assigned(session, team_id, user_id, k)
    return [{**m, "_team_id": team_id} if m is not None else None for m in picks]


def pick_member(session, team_id):
    """One member (reserved and counted), or None when nobody is free."""
    return pick_many(session, team_id, 1)[0]


def assign_lead(session, team_id, lead_id, now):
    """Route a lead already inserted (unowned) to a member of `team_id`: take a turn, reserve the
    member's place and give them the lead. Done after the lead's keys are in (a duplicate takes no
    turn) and as late as possible: the only row locks taken are the chosen member's counter and
    membership rows, from here to the commit. Returns (member, lead row) or (None, None).

    On PostgreSQL, when the member is still free (the usual case), that is two statements: the
    snapshot (members, counts, team code and the turn) and one statement that reserves, counts and
    assigns (data-modifying CTEs)."""
    pg = is_postgres(session)
    members = team_snapshot(session, team_id, turn=True)
    if not members:
        return None, None
    strategy = members[0]["strategy"]
    if strategy != "round_robin":
        member = pick_member(session, team_id)
        return member, (_give(session, lead_id, member, now) if member is not None else None)
    turn = members[0]["_turn"] if pg else _turns(session, team_id, 1)[0]
    while True:
        chosen = _choose(strategy, members, turn)
        if chosen is None:
            return None, None
        if pg:
            row = _reserve_and_give(session, team_id, lead_id, chosen, now)
            if row is not None:
                return {**chosen, "_team_id": team_id}, row
        elif load.reserve(session, chosen["user_id"], chosen["max_open_leads"]):
            _count_assigned(session, team_id, chosen["user_id"], 1)
            return {**chosen, "_team_id": team_id}, _give(session, lead_id, chosen, now)
        chosen["_full"] = True  # filled up (or left the team) meanwhile: the next free member


_ROUND_ROBIN_SQL = """
WITH t AS (SELECT nextval(CAST(:seq AS regclass)) AS turn),
f AS (SELECT m.user_id, m.name, m.max_open_leads,
             row_number() OVER (ORDER BY m.position, m.user_id) - 1 AS idx, count(*) OVER () AS n
      FROM team_members m JOIN teams tm ON tm.id = m.team_id AND tm.strategy = 'round_robin'
      LEFT JOIN owner_loads o ON o.user_id = m.user_id
      WHERE m.team_id = :team AND m.active
        AND (m.max_open_leads IS NULL OR coalesce(o.open_leads, 0) < m.max_open_leads)),
c AS (SELECT f.* FROM f, t WHERE f.idx = t.turn % f.n),
r AS (INSERT INTO owner_loads (user_id, open_leads) SELECT user_id, 1 FROM c
      ON CONFLICT (user_id) DO UPDATE SET open_leads = owner_loads.open_leads + 1
      WHERE owner_loads.open_leads < coalesce((SELECT max_open_leads FROM c), 2147483647)
      RETURNING owner_loads.user_id),
m AS (UPDATE team_members SET assigned_count = team_members.assigned_count + 1 FROM r
      WHERE team_members.team_id = :team AND team_members.user_id = r.user_id
      RETURNING team_members.user_id, team_members.name),
g AS (UPDATE leads SET owner_id = m.user_id, owner_name = m.name, status = 'new', assigned_at = :now,
             pooled_at = NULL
      FROM m WHERE leads.id = :lead AND leads.owner_id IS NULL
      RETURNING leads.id, leads.owner_id, leads.owner_name, leads.status, leads.assigned_at, leads.pooled_at,
                leads.created_at, leads.updated_at),
h AS (INSERT INTO lead_history (lead_id, at, kind, actor_id, actor_name, to_owner_id, reason)
      SELECT g.id, :now, 'assigned', :actor_id, :actor_name, g.owner_id, 'auto' FROM g RETURNING lead_history.id)
SELECT g.*, (SELECT code FROM teams WHERE id = :team) AS _team_code, (SELECT count(*) FROM h) AS _history FROM g
"""


# what the assignment changes in the lead (and its timestamps, as the server gives them back: in its
# session time zone), not the whole row: the caller has the rest (what it inserted in this
# transaction, which nobody else sees before the commit). 8 columns instead of 42: psycopg builds a
# description and SQLAlchemy a row of each column on every execute (about 0.1 ms for the 34 more).
ROUND_ROBIN_COLUMNS = ("id", "owner_id", "owner_name", "status", "assigned_at", "pooled_at", "created_at", "updated_at")
_ROUND_ROBIN = text(_ROUND_ROBIN_SQL).columns(*(leads.c[c] for c in ROUND_ROBIN_COLUMNS), column("_team_code", String),
                                              column("_history", Integer))


def _strategies(session) -> dict:
    """team id -> (strategy, rr_cursor, whether its turn sequence exists)."""
    seq = func.to_regclass(func.concat("leads_team_", teams.c.id, "_turn")).is_not(None)
    return {r[0]: tuple(r[1:]) for r in session.execute(select(teams.c.id, teams.c.strategy, teams.c.rr_cursor, seq))}


def assign_round_robin(session, team_id, lead_id, now, actor):
    """PostgreSQL, round robin, one statement (data-modifying CTEs): take the team's turn, choose
    the free member it falls on, reserve their place (conditional on the cap), count the
    assignment, give them the lead and write the `assigned` history row. Returns the lead's columns
    the assignment wrote and its timestamps (`ROUND_ROBIN_COLUMNS`, with `_team_code`): the caller
    lays them over the lead as it inserted it. None when that did not work out (not a round-robin team, nobody free, the
    member filled up meanwhile): then `assign_lead` does it step by step."""
    if not is_postgres(session):
        return None
    strategy, cursor, has_turns = cache.get(session, "team_strategies", _strategies).get(team_id, (None, 0, True))
    if not has_turns:  # a team made by a pod of the release before 0006 during the rollout
        create_turns(session, team_id, cursor)
        cache.clear()
    if strategy != "round_robin":
        return None
    return driver_execute(session, _ROUND_ROBIN, {"seq": turn_sequence(team_id), "team": team_id, "lead": lead_id,
                                                  "now": now, "actor_id": getattr(actor, "id", None),
                                                  "actor_name": getattr(actor, "name", None)}).mappings().first()


def _owned_values(member, now) -> dict:
    return dict(owner_id=member["user_id"], owner_name=member["name"], status="new", assigned_at=now, pooled_at=None)


def _give(session, lead_id, member, now):
    stmt = built(session, "give", lambda _: (
        update(leads).where(leads.c.id == bindparam("p_lead"))
        .values({c: bindparam(f"p_{c}", type_=leads.c[c].type) for c in _OWNED}).returning(*leads.c)))
    return session.execute(stmt, {"p_lead": lead_id, **{f"p_{c}": v for c, v in _owned_values(member, now).items()}}
                           ).mappings().one()


_OWNED = ("owner_id", "owner_name", "status", "assigned_at", "pooled_at")


def _reserve_and_give(session, team_id, lead_id, member, now):
    """PostgreSQL, one statement: reserve the member's place (conditional on the cap), count the
    assignment, give them the lead; no row when the member is full."""
    cap = member["max_open_leads"]
    ins = pg_insert(owner_loads).values(user_id=member["user_id"], open_leads=1)
    loads_cte = ins.on_conflict_do_update(
        index_elements=["user_id"], set_={"open_leads": owner_loads.c.open_leads + 1},
        where=None if cap is None else owner_loads.c.open_leads < cap).returning(owner_loads.c.user_id).cte("l")
    counted = (update(team_members).where(team_members.c.team_id == team_id,
                                          team_members.c.user_id == loads_cte.c.user_id)
               .values(assigned_count=team_members.c.assigned_count + 1)
               .returning(team_members.c.user_id).cte("m"))
    stmt = (update(leads).where(leads.c.id == lead_id, leads.c.owner_id.is_(None),
                                exists(select(counted.c.user_id)))
            .values(**_owned_values(member, now)).returning(*leads.c).add_cte(loads_cte).add_cte(counted))
    return session.execute(stmt).mappings().first()


def unpick(session, chosen: dict) -> None:
    """Give back a place and an assigned count taken by pick_many in this transaction (the lead was
    a duplicate after all). A round-robin turn is not given back (sequences never are)."""
    _count_assigned(session, chosen["_team_id"], chosen["user_id"], -1)
    load.shift(session, chosen["user_id"], -1)


def fair_start_count(session, team_id, weight: int) -> int:
    """The assigned count a member joining (or coming back to) a weighted team starts from, so they
    take their share from now on instead of catching up on everything they missed."""
    rows = session.execute(select(team_members.c.assigned_count, team_members.c.weight).where(
        team_members.c.team_id == team_id, team_members.c.active.is_(True), team_members.c.weight > 0)).all()
    if not rows:
        return 0
    per_weight = min(c / w for c, w in rows)
    return int(per_weight * weight)
