"""Scheduled jobs, reading the time from runtime.clock (tests use FrozenClock). Each is idempotent:
flags on the rows (expiring_notified, churn_checked, overdue_level, reminded_at) make a repeated run
do nothing new."""
from __future__ import annotations

from crm_shared.service import Job

from .domain import approvals, contracts, customers, receivables, rollup


def contract_lifecycle(rt) -> dict:
    now = rt.clock.now()
    today = now.date()
    with rt.uow() as uow:
        contracts.activate_started(uow, today=today, now=now)
        expiring = contracts.mark_expiring(uow, today=today, now=now)
        counts = contracts.expire(uow, today=today, now=now)
        uow.commit()
    return {"expiring": expiring, **counts}


def payments_overdue(rt) -> int:
    now = rt.clock.now()
    with rt.uow() as uow:
        n = receivables.flag_overdue(uow, today=now.date(), now=now)
        uow.commit()
    return n


def approval_reminders(rt) -> dict:
    now = rt.clock.now()
    with rt.uow() as uow:
        counts = approvals.remind_and_escalate(uow, now=now)
        uow.commit()
    return counts


def value_tiers(rt) -> int:
    now = rt.clock.now()
    with rt.uow() as uow:
        n = customers.recompute_tiers(uow, now=now)
        uow.commit()
    return n


def report_rollups(rt) -> None:
    """Rebuild the report rollups from the opportunities: repairs what a writer that does not keep
    them (the previous release, during a rollout or after a rollback) left behind. Writes wait on
    PostgreSQL while it runs (seconds on a million opportunities)."""
    with rt.uow() as uow:
        rollup.rebuild(uow.session)
        uow.commit()


JOBS = (
    Job("contract_lifecycle", contract_lifecycle, cron="5 0 * * *"),
    Job("payments_overdue", payments_overdue, cron="15 0 * * *"),
    Job("approval_reminders", approval_reminders, every_seconds=600),
    Job("value_tiers", value_tiers, cron="30 2 * * *"),
    Job("report_rollups", report_rollups, cron="45 2 * * *"),
)
