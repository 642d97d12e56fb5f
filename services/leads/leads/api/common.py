"""What every view of the leads API needs: the acting user, the unit of work, the clock, paging,
and domain refusals answered as problem+json."""
from __future__ import annotations

from flask import current_app, request
from sqlalchemy import func, select

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.auth import current_user
from crm_shared.web.errors import problem

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


def page(session, query, args: dict, order_by) -> dict:
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = session.execute(query.order_by(*order_by).limit(args["per_page"])
                           .offset((args["page"] - 1) * args["per_page"])).mappings().all()
    return {"items": rows, "total": total, "page": args["page"], "per_page": args["per_page"]}


def domain_error(exc: DomainError):
    headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
    return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)


def path() -> str:
    return request.path
