"""What every view needs: the request's unit of work, the clock, the calendar, domain errors as
problem documents."""
from __future__ import annotations

from flask import current_app

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.errors import Problem

from ..domain.common import DomainError, utc_now
from ..domain.sla import load_calendar

_STATUS = {"not_found": (404, "Not Found"), "conflict": (409, "Conflict"), "forbidden": (403, "Forbidden"),
           "gone": (410, "Gone")}


def now():
    return utc_now(runtime_of(current_app).clock)


def uow():
    return unit_of_work()


def calendar():
    return load_calendar(unit_of_work().session)


def problem(exc: DomainError) -> Problem:
    status, title = _STATUS.get(exc.kind, (400, "Bad Request"))
    return Problem(status, title, str(exc))


def register_errors(blp) -> None:
    from crm_shared.web.errors import problem as respond

    @blp.app_errorhandler(DomainError)
    def _domain_error(exc):
        status, title = _STATUS.get(exc.kind, (400, "Bad Request"))
        return respond(status, title, str(exc))
