"""Retention of the outbox and the inbox: a job every worker runs (hourly), deleting in batches.

* Outbox rows are kept `OUTBOX_RETENTION_DAYS` (default 7) after the broker confirmed them: long
  enough to re-publish a window of events to one consumer (`crm outbox republish`) after a
  restore. Rows not yet published are never deleted, however old.
* Inbox rows (`processed_events`) are the consumers' memory of what they already applied: an event
  that arrives again after its id was deleted is applied again. They are kept
  `INBOX_RETENTION_DAYS` (default 30), which must be longer than any way an event can come back:
  broker redelivery and retries (seconds to minutes), dead letters replayed after a fix (days:
  watch CrmDeadLetters), and re-publishing from a producer's outbox (up to its retention). So the
  inbox's retention must exceed the outbox's (Settings.check refuses otherwise).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import delete, select

from .service import Job

log = logging.getLogger(__name__)
DELETED = Counter("crm_retention_deleted_total", "Outbox and inbox rows deleted by retention", ["service", "table"])
EVERY_SECONDS = 3600.0


def _purge(rt, table, key, age_column, cutoff, batch: int, extra=None) -> int:
    total = 0
    while True:
        where = [age_column < cutoff] + ([extra] if extra is not None else [])
        with rt.engine.begin() as conn:  # one short transaction per batch: no long lock, no bloat spike
            ids = conn.execute(select(key).where(*where).order_by(key).limit(batch)).scalars().all()
            if not ids:
                break
            conn.execute(delete(table).where(key.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        DELETED.labels(rt.name, table.name).inc(total)
    return total


def purge_outbox(rt, days: float | None = None, batch: int = 1000) -> int:
    """Delete published outbox rows older than `days` (pending rows always stay). 0: keep all."""
    days = rt.settings.outbox_retention_days if days is None else days
    if not days:
        return 0
    ob = rt.outbox
    cutoff = rt.clock.now() - timedelta(days=days)
    return _purge(rt, ob, ob.c.id, ob.c.published_at, cutoff, batch, ob.c.published_at.is_not(None))


def purge_inbox(rt, days: float | None = None, batch: int = 1000) -> int:
    """Delete processed event ids older than `days`. 0: keep all."""
    days = rt.settings.inbox_retention_days if days is None else days
    if not days:
        return 0
    ib = rt.inbox
    cutoff = rt.clock.now() - timedelta(days=days)
    return _purge(rt, ib, ib.c.event_id, ib.c.processed_at, cutoff, batch)


def run(rt) -> None:
    n_out, n_in = purge_outbox(rt), purge_inbox(rt)
    if n_out or n_in:
        log.info("retention: old rows deleted", extra={"outbox": n_out, "inbox": n_in})


JOB = Job("outbox-inbox-retention", run, every_seconds=EVERY_SECONDS)
