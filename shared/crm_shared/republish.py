"""Re-publish events a producer still holds in its outbox to ONE consumer's queue only.

After a consumer's database was restored from a backup, it has to see again the events it had
consumed since the backup point. Every producer keeps its published events in its outbox for
OUTBOX_RETENTION_DAYS; this reads them (in commit order) from the producer's database and puts
copies straight into the consumer's queue (not through the topic exchange: the other subscribers
get nothing). The consumer's inbox skips the ones whose effects it still has, so running it twice,
or over a window that is too wide, costs load, not correctness."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .bus import OutgoingMessage
from .events.catalogue import bindings_for


def consumed_types(consumer: str, produced: list[str] | None = None) -> list[str]:
    """The event types the consumer's queue is bound to (optionally only those in `produced`)."""
    types = sorted(bindings_for(consumer))
    return [t for t in types if produced is None or t in produced]


def select_events(engine, outbox, types: list[str], since: datetime | None = None, until: datetime | None = None,
                  batch: int = 500):
    """Published outbox rows of those types, oldest first, in batches (keyset on the id)."""
    last = 0
    while True:
        q = (select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.envelope)
             .where(outbox.c.id > last, outbox.c.published_at.is_not(None), outbox.c.event_type.in_(types))
             .order_by(outbox.c.id).limit(batch))
        if since is not None:
            q = q.where(outbox.c.created_at >= since)
        if until is not None:
            q = q.where(outbox.c.created_at < until)
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def republish(producer_rt, bus, consumer: str, types: list[str], since=None, until=None, dry_run: bool = False,
              batch: int = 500) -> int:
    n = 0
    for rows in select_events(producer_rt.engine, producer_rt.outbox, types, since, until, batch):
        if not dry_run:
            bus.send_to_queue(consumer, [OutgoingMessage(r.event_id, r.event_type, r.envelope.encode())
                                         for r in rows])
        n += len(rows)
    return n
