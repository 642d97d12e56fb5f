"""Digests: messages a user chose to get as a digest (hourly or daily), and messages over the
throttle, wait in status `digest`; when their time comes they are folded into one message per
recipient and channel. Folding is idempotent: the digest's id is derived from what it folds."""
from __future__ import annotations

import hashlib

from sqlalchemy import select, update

from . import models as m
from .planner import Planner


def run(rt) -> int:
    now = rt.clock.now()
    d = m.deliveries
    with rt.engine.connect() as c:
        groups = c.execute(select(d.c.recipient, d.c.channel).where(d.c.status == "digest", d.c.due_at <= now)
                           .group_by(d.c.recipient, d.c.channel)).all()
    made = 0
    for recipient, channel in groups:
        with rt.uow() as uow:
            s = uow.session
            q = select(d).where(d.c.status == "digest", d.c.due_at <= now, d.c.recipient == recipient,
                                d.c.channel == channel).order_by(d.c.id)
            if rt.is_postgres:
                q = q.with_for_update(skip_locked=True)
            rows = s.execute(q).all()
            if not rows:
                continue
            ids = [r.id for r in rows]
            key = hashlib.sha1(f"{recipient}|{channel}|{','.join(map(str, ids))}".encode()).hexdigest()[:32]
            items = [{"subject": r.subject or r.event_type, "event_type": r.event_type, "event_id": r.event_id}
                     for r in rows]
            planner = Planner(s, now)
            planner.add(event_id=f"digest:{key}", event_type="digest", recipient=recipient, channel=channel,
                        template="digest", context={"items": items, "count": len(items)}, kind="digest",
                        honour_preferences=False, payload={"delivery_ids": [str(i) for i in ids]})
            planner.flush()
            digest_id = s.execute(select(d.c.id).where(d.c.event_id == f"digest:{key}", d.c.recipient == recipient,
                                                       d.c.channel == channel)).scalar_one()
            s.execute(update(d).where(d.c.id.in_(ids)).values(status="digested", digest_id=digest_id,
                                                              note=f"folded into digest {digest_id}"))
            uow.commit()
            made += 1
    return made

