"""Who sees which tickets: agents the tickets of their queues (and those assigned to them),
supervisors and admins all, sales reps read-only the tickets of customers they own (a sales
manager those of the team's customers). A ticket out of sight answers 404, not 403."""
from __future__ import annotations

from sqlalchemy import false, or_, select

from ..models import agent_skills, customers, tickets

STAFF = ("service_agent", "service_supervisor")
SALES = ("sales_rep", "sales_manager", "general_manager")


def sees_all(user) -> bool:
    return user.is_admin or user.has("service_supervisor", "service")


def scope(user):
    """A condition on `tickets` selecting what the user may read; None for everything."""
    if sees_all(user):
        return None
    conds = []
    if user.has("service_agent"):
        conds.append(tickets.c.queue.in_(select(agent_skills.c.queue).where(agent_skills.c.user_id == user.id)))
        conds.append(tickets.c.assignee_id == user.id)
    if user.has("general_manager"):
        return None
    if user.has("sales_rep", "sales_manager"):
        owned = customers.c.owner_id == user.id
        if user.has("sales_manager") and user.team:
            owned = or_(owned, customers.c.team_id == user.team)
        conds.append(tickets.c.customer_id.in_(select(customers.c.customer_id).where(owned)))
    return or_(*conds) if conds else false()


def can_write(user) -> bool:
    return user.is_admin or user.has(*STAFF, "service")
