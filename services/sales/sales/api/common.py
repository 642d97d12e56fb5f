"""What every view shares: the request's unit of work, the clock, the caller, and problem+json for
the domain's errors."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import current_app

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.auth import current_user
from crm_shared.web.errors import Problem

from ..domain.errors import DomainError
from ..domain.money import plain

__all__ = ["uow", "now", "user", "register_errors", "jsonable", "hidden", "current_user", "plain"]


def uow():
    return unit_of_work()


def now() -> datetime:
    return runtime_of(current_app).clock.now()


def user():
    return current_user()


def hidden(what: str, ident) -> Problem:
    """Another rep's record answers 404, like a missing one, so its existence does not leak."""
    return Problem(404, "Not Found", f"No {what} {ident}.")


def register_errors(blp) -> None:
    @blp.app_errorhandler(DomainError)
    def _domain(exc: DomainError):
        from crm_shared.web.errors import problem
        extra = {k: v for k, v in exc.extra.items() if not k.startswith("_")}
        return problem(exc.status, exc.title, exc.detail, **extra)


def jsonable(value):
    """Reports as JSON: Decimal as a string, dates in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value

