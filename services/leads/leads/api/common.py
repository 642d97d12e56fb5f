"""What every view of the leads API needs: the acting user, the unit of work, the clock, paging,
and domain refusals answered as problem+json."""
from __future__ import annotations

from flask import current_app, g, request
from sqlalchemy import func, select

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.auth import current_user
from crm_shared.web.errors import problem

from ..domain import access, policy, recycle
from ..domain.actor import Actor
from ..domain.errors import DomainError


def actor() -> Actor:
    u = current_user()
    return Actor(id=u.id, name=u.name, roles=tuple(u.roles), team=u.team)


def uow():
    return unit_of_work()


def runtime():
    return runtime_of(current_app)


def now():
    return runtime().clock.now()


def page(session, query, args: dict, order_by, count_limit: int | None = None) -> dict:
    """One page and the total. With `count_limit`, counting stops there (a pool of a million leads
    is not counted on every page) and `total_is_lower_bound` says so."""
    counted = query.order_by(None)
    if count_limit is not None:
        counted = counted.limit(count_limit + 1)
    total = session.execute(select(func.count()).select_from(counted.subquery())).scalar_one()
    capped = count_limit is not None and total > count_limit
    rows = session.execute(query.order_by(*order_by).limit(args["per_page"])
                           .offset((args["page"] - 1) * args["per_page"])).mappings().all()
    return {"items": rows, "total": min(total, count_limit) if capped else total, "total_is_lower_bound": capped,
            "page": args["page"], "per_page": args["per_page"]}


def domain_error(exc: DomainError):
    headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
    return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)


def path() -> str:
    return request.path


def present(row, a, **kw) -> dict:
    """The lead as `access.present` shows it to this actor, with `recycle_at`: when the recycle scan
    returns it to the pool (its own rule, the team's pool policy; None when the scan does not watch
    the lead). The policies come from the per-process configuration cache."""
    out = access.present(row, a, **kw)
    out["recycle_at"] = recycle.recycle_at(row, _team_policy)
    return out


def _team_policy(team_id) -> dict:
    cache = g.setdefault("leads_pool_policies", {})
    if team_id not in cache:
        cache[team_id] = policy.load_cached(unit_of_work().session, team_id)
    return cache[team_id]
