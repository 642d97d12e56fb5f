"""Open leads per owner (`owner_loads`): the counter the capacity cap (`team_members.max_open_leads`)
is checked against, kept in the same transaction as every change of a lead's owner or status.

A lead counts for its owner while its status is open (new, contacted, qualified). Intake reserves a
place with one conditional statement (`… DO UPDATE … WHERE open_leads < cap`), so two intakes can
never both take a member's last place; every other change (claim, release, recycle, transfer,
conversion, disqualification, win-back) moves the counter with `shift`/`moved`."""
from __future__ import annotations

from sqlalchemy import Integer, bindparam, func, select

from ..models import leads, owner_loads
from .records import OPEN
from .util import built


def _upsert(insert, capped: bool):
    k = bindparam("p_k", type_=Integer)
    stmt = insert(owner_loads).values(user_id=bindparam("p_user"), open_leads=k)
    where = owner_loads.c.open_leads + k <= bindparam("p_cap", type_=Integer) if capped else None
    return stmt.on_conflict_do_update(index_elements=["user_id"], set_={"open_leads": owner_loads.c.open_leads + k},
                                      where=where)


def reserve(session, user_id: str, cap: int | None, k: int = 1) -> bool:
    """Count `k` more open leads for `user_id` if that keeps them within `cap` (None: no cap).
    The row stays locked to the end of the transaction (PostgreSQL re-checks the condition against
    a concurrent reservation once it commits)."""
    if cap is not None and k > cap:
        return False
    stmt = built(session, f"reserve:{cap is not None}",
                 lambda insert: _upsert(insert, cap is not None).returning(owner_loads.c.user_id))
    return session.execute(stmt, {"p_user": user_id, "p_k": k, "p_cap": cap}).first() is not None


def shift(session, user_id: str | None, k: int) -> None:
    if user_id and k:
        session.execute(built(session, "shift", lambda insert: _upsert(insert, False)), {"p_user": user_id, "p_k": k})


def is_open(status: str | None) -> bool:
    return status in OPEN


def moved(session, before_owner, before_status, after_owner, after_status) -> None:
    """A lead went from (owner, status) to (owner, status): move its count."""
    was = before_owner if before_owner and is_open(before_status) else None
    now = after_owner if after_owner and is_open(after_status) else None
    if was == now:
        return
    shift(session, was, -1)
    shift(session, now, 1)


def loads(session, user_ids: list[str]) -> dict[str, int]:
    if not user_ids:
        return {}
    return dict(session.execute(select(owner_loads.c.user_id, owner_loads.c.open_leads)
                                .where(owner_loads.c.user_id.in_(user_ids))).all())


def recount(session) -> dict[str, int]:
    """What the counters should be (a COUNT over leads): for tests and repairs."""
    return dict(session.execute(select(leads.c.owner_id, func.count()).where(
        leads.c.owner_id.is_not(None), leads.c.status.in_(OPEN)).group_by(leads.c.owner_id)).all())
