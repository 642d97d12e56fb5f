"""Scheduled jobs run by the worker. They read the time from `runtime.clock` (tests use
FrozenClock) and are idempotent."""
from crm_shared.service import Job

from .domain import recycle


def recycle_leads(runtime) -> dict:
    """Warn owners of leads about to return to the pool, and recycle the ones that are due."""
    return recycle.scan(runtime)


JOBS = (Job("recycle_leads", recycle_leads, every_seconds=300),)
