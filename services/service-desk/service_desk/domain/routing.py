"""Skill-based, least-loaded routing with capacity. An agent's `open_count` moves only through
conditional updates (`... WHERE open_count < max_open`), so concurrent assignments never take an
agent past `max_open`: on PostgreSQL the second update waits for the first's row lock and then
re-checks the condition; on SQLite transactions are serialised."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update

from ..models import agent_skills, agents, tickets
from .common import GOLD, PRIORITIES


def rank(priority: str, tier: str | None) -> int:
    """Queue order, lower first: gold customers and urgent tickets ahead of everything else, then
    by priority."""
    base = 0 if (tier == GOLD or priority == "urgent") else 10
    return base + PRIORITIES.index(priority)


def candidates(session, queue: str) -> list[str]:
    """Active agents with the skill and room, fewest open tickets first."""
    q = (select(agents.c.user_id)
         .join(agent_skills, agent_skills.c.user_id == agents.c.user_id)
         .where(agent_skills.c.queue == queue, agents.c.active.is_(True), agents.c.open_count < agents.c.max_open)
         .order_by(agents.c.open_count, agents.c.user_id))
    return list(session.execute(q).scalars())


def take_slot(session, user_id: str, now: datetime, force: bool = False) -> bool:
    """Count one more open ticket for the agent, if they have room (or `force`: a supervisor's
    explicit choice). False if they are full or inactive."""
    cond = [agents.c.user_id == user_id, agents.c.active.is_(True)]
    if not force:
        cond.append(agents.c.open_count < agents.c.max_open)
    res = session.execute(update(agents).where(and_(*cond))
                          .values(open_count=agents.c.open_count + 1, updated_at=now))
    return res.rowcount == 1


def release_slot(session, user_id: str, now: datetime) -> None:
    session.execute(update(agents).where(agents.c.user_id == user_id, agents.c.open_count > 0)
                    .values(open_count=agents.c.open_count - 1, updated_at=now))


def pick_agent(session, queue: str, now: datetime, skip_locked: bool = False) -> str | None:
    """Reserve a slot with the least-loaded free agent of the queue; None when nobody is free.

    Filing a ticket waits for an agent row another transaction holds (it holds no other agent
    meanwhile, so it cannot deadlock). Handing out waiting tickets after a release
    (`skip_locked`) passes over agents held elsewhere instead: that transaction already holds the
    released ticket's row, and waiting there could close a cycle."""
    for user_id in candidates(session, queue):
        if skip_locked:
            free = session.execute(select(agents.c.user_id).where(
                agents.c.user_id == user_id, agents.c.active.is_(True), agents.c.open_count < agents.c.max_open)
                .with_for_update(skip_locked=True)).first()
            if free is None:
                continue
        if take_slot(session, user_id, now):
            return user_id
    return None


def waiting(session, queues: list[str] | None = None, limit: int = 100):
    """Waiting tickets, best rank first; rows another transaction is handing out are skipped."""
    q = select(tickets.c.id, tickets.c.queue).where(tickets.c.status == "new", tickets.c.assignee_id.is_(None))
    if queues is not None:
        q = q.where(tickets.c.queue.in_(queues))
    q = q.order_by(tickets.c.rank, tickets.c.created_at, tickets.c.id).limit(limit)
    return session.execute(q.with_for_update(skip_locked=True)).all()


def skills_of(session, user_id: str) -> list[str]:
    return sorted(session.execute(select(agent_skills.c.queue).where(agent_skills.c.user_id == user_id)).scalars())
