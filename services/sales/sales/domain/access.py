"""Who sees what: a rep their own records, a manager their team's, the others everything."""
from __future__ import annotations

from sqlalchemy import false, true

SEE_ALL = ("admin", "general_manager", "finance")


def scope(table, user, extra_all: tuple[str, ...] = ()):
    """A WHERE clause limiting `table` (with owner_id and team_id) to what `user` may see."""
    if user.has(*SEE_ALL, *extra_all):
        return true()
    clauses = []
    if user.has("sales_manager") and user.team:
        clauses.append(table.c.team_id == user.team)
    if user.has("sales_rep", "sales_manager"):
        clauses.append(table.c.owner_id == user.id)
    if not clauses:
        return false()
    from sqlalchemy import or_
    return or_(*clauses)


def can_see(row, user, extra_all: tuple[str, ...] = ()) -> bool:
    if user.has(*SEE_ALL, *extra_all):
        return True
    if user.has("sales_manager") and user.team and row.team_id == user.team:
        return True
    return user.has("sales_rep", "sales_manager") and row.owner_id == user.id
