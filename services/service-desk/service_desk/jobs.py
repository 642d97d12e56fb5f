"""Scheduled jobs, run by the worker's scheduler; each reads the time from `runtime.clock` and is
safe to run again (conditional updates)."""
from crm_shared.service import Job

from .domain import escalation, tickets
from .domain.common import utc_now


def sla_scan(runtime) -> dict:
    return escalation.scan(runtime)


def auto_close(runtime) -> int:
    total = 0
    while True:
        with runtime.uow() as uow:
            n = tickets.close_resolved(uow, utc_now(runtime.clock))
            uow.commit()
        total += n
        if n == 0:
            return total


def route_waiting(runtime) -> int:
    """A safety net: waiting tickets are normally assigned the moment an agent frees up."""
    with runtime.uow() as uow:
        n = tickets.dispatch_waiting(uow, utc_now(runtime.clock))
        uow.commit()
    return n


JOBS = (
    Job("sla-scan", sla_scan, every_seconds=30),
    Job("auto-close", auto_close, every_seconds=600),
    Job("route-waiting", route_waiting, every_seconds=60),
)
