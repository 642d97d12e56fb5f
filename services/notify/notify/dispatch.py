"""Sends the deliveries that are due (the dispatch job). Time comes from `runtime.clock`.

1. Claim: due rows go from `pending` to `sending` with a lease, in a short transaction (on
   PostgreSQL with FOR UPDATE SKIP LOCKED, so two workers never take the same row; a worker that
   dies mid-way leaves rows whose lease runs out and are claimed again).
2. Send, channel by channel (and webhook endpoint by endpoint) in parallel threads, so a slow or
   dead channel (SMTP down) never holds up the others. A channel found down is not hammered: the rest of its rows wait for the
   next run, without counting a try.
3. Record every try (`delivery_attempts`) and the outcome on the row: sent; or retried later with
   exponential backoff; or failed for good (a webhook also counts towards being disabled)."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update

from crm_shared import tracing

from . import cache
from . import models as m
from . import store
from .channels import ChannelDown, SendError
from .channels.email import SmtpSender
from .channels.net import HttpClient
from .channels.sms import provider, valid_mobile
from .channels.webhook import WebhookSender
from .config import config_of
from .domain.rules import next_retry, quiet_until, sms_parts, utc

log = logging.getLogger(__name__)
MAX_THREADS = 8


class Channels:
    """The adapters, built once per runtime."""

    def __init__(self, cfg):
        self.email = SmtpSender(cfg.smtp_url, cfg.mail_from, ca_file=cfg.smtp_ca_file)
        self.webhook_http = HttpClient(cfg.allow_private, cfg.http_timeout, cfg.allow_networks)
        self.webhooks = WebhookSender(self.webhook_http)
        # the SMS provider's URL is the operator's configuration, not user input: not SSRF-guarded
        self.sms = provider(cfg.sms_url, cfg.sms_key, cfg.sms_secret, HttpClient(True, cfg.http_timeout))


def channels_of(runtime) -> Channels:
    ch = runtime.__dict__.get("_notify_channels")
    if ch is None:
        ch = runtime.__dict__["_notify_channels"] = Channels(config_of(runtime))
    return ch


# statements run for every row, built once (building one with its values inside, and its cache key,
# costs more CPU than running it): the values go in as parameters
_SET_DELIVERY = update(m.deliveries).where(m.deliveries.c.id == bindparam("delivery_id_"))
_SENT_IN_WINDOW = select(func.count(), func.min(m.deliveries.c.sent_at)).where(
    m.deliveries.c.recipient == bindparam("recipient"), m.deliveries.c.channel == bindparam("channel"),
    m.deliveries.c.status == "sent", m.deliveries.c.sent_at > bindparam("since"))
_ATTEMPT = m.delivery_attempts.insert()


def _set_delivery(s, delivery_id: int, **values) -> None:
    """UPDATE deliveries SET <values> WHERE id = delivery_id (the SET clause follows the keys given)."""
    s.execute(_SET_DELIVERY, {"delivery_id_": delivery_id, **values})


def claim(rt, limit: int) -> list:
    now = rt.clock.now()
    d = m.deliveries
    with rt.uow() as uow:
        q = (select(d.c.id).where(or_(and_(d.c.status == "pending", d.c.due_at <= now),
                                      and_(d.c.status == "sending", d.c.lease_until < now)))
             .order_by(d.c.due_at, d.c.id).limit(limit))
        if rt.is_postgres:
            q = q.with_for_update(skip_locked=True)
        ids = [r.id for r in uow.session.execute(q)]
        if not ids:
            return []
        lease = timedelta(seconds=config_of(rt).dispatch_lease_seconds)
        uow.session.execute(update(d).where(d.c.id.in_(ids)).values(status="sending", lease_until=now + lease))
        rows = uow.session.execute(select(d).where(d.c.id.in_(ids)).order_by(d.c.due_at, d.c.id)).all()
        uow.commit()
    return rows


def run(rt) -> int:
    """One dispatch run: returns the number of rows handled."""
    cfg = config_of(rt)
    rows = claim(rt, cfg.dispatch_batch)
    if not rows:
        return 0
    # one group per channel, and one per webhook endpoint: a slow receiver holds up only itself
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.recipient if r.recipient.startswith("webhook:") else r.channel, []).append(r)
    if len(groups) == 1:
        _run_channel(rt, next(iter(groups.values())))
    else:
        with ThreadPoolExecutor(max_workers=min(len(groups), MAX_THREADS), thread_name_prefix="notify-send") as pool:
            for f in [pool.submit(_run_channel, rt, g) for g in groups.values()]:
                f.result()
    return len(rows)


def _run_channel(rt, rows) -> None:
    down = None
    for row in rows:
        if down is not None:
            # wait as long as the row that found the channel down: left due now, the rows of a
            # channel that is down would fill every claim and starve the channels that work
            _release(rt, row, down, delay=timedelta(seconds=config_of(rt).retry_base_seconds))
            continue
        try:
            # continues the trace of the event that planned it (a no-op when tracing is off)
            with tracing.span_from(rt.name, f"notify deliver {row.channel}", row.trace_context,
                                   **{"crm.delivery_id": int(row.id), "crm.event_type": row.event_type}):
                _deliver(rt, row)
        except ChannelDown as exc:
            down = str(exc)
        except Exception:  # noqa: BLE001 - one bad row must not stop the others
            log.exception("delivery failed unexpectedly", extra={"delivery_id": row.id})
            _release(rt, row, "internal error, will be tried again")


def topic_of(event_type: str) -> str:
    """What an inbox item is about: the event type's first word (lead, ticket, reminder ...)."""
    return event_type.split(".", 1)[0][:40]


def _release(rt, row, why: str, delay: timedelta | None = None) -> None:
    """Back to pending without counting a try (the channel was down before this row's turn),
    due again after `delay`."""
    values = dict(status="pending", lease_until=None, note=f"waiting: {why}"[:500])
    if delay is not None:
        values["due_at"] = rt.clock.now() + delay
    with rt.uow() as uow:
        uow.session.execute(update(m.deliveries).where(m.deliveries.c.id == row.id, m.deliveries.c.status == "sending")
                            .values(**values))
        uow.commit()


def _finish(rt, row, **values) -> None:
    with rt.uow() as uow:
        _set_delivery(uow.session, row.id, lease_until=None, **values)
        uow.commit()


def _deliver(rt, row) -> None:
    cfg = config_of(rt)
    now = rt.clock.now()
    rec = hook = None
    decision: tuple = ("send",)
    with rt.uow() as uow:  # read-only look: decide, then act in transactions of their own
        s = uow.session
        if row.recipient.startswith("webhook:"):
            hook = s.execute(select(m.webhooks).where(m.webhooks.c.id == int(row.recipient.split(":", 1)[1]))).first()
        else:
            rec, pref = store.person(s, row.recipient)
            # quiet hours: an SMS is held until they end (not dropped); critical messages go at once
            if row.channel == "sms" and not row.critical:
                start, end = store.quiet_hours(rec, pref)
                until = quiet_until(now, rec.timezone if rec is not None else None, start, end)
                if until is not None:
                    decision = ("hold", until)
            # throttle: beyond N per window the message goes into the next digest
            if decision[0] == "send" and row.channel != "inbox" and row.kind != "digest" and not row.critical:
                window_start = now - timedelta(seconds=cfg.throttle_window_seconds)
                sent = s.execute(_SENT_IN_WINDOW, {"recipient": row.recipient, "channel": row.channel,
                                                   "since": window_start}).first()
                if sent[0] >= cfg.throttle_max:
                    decision = ("throttle", utc(sent[1]) + timedelta(seconds=cfg.throttle_window_seconds), sent[0])
    if decision[0] == "hold":
        return _finish(rt, row, status="pending", due_at=decision[1],
                       note=f"held for quiet hours until {decision[1].isoformat()}")
    if decision[0] == "throttle":
        return _finish(rt, row, status="digest", digest_mode="throttle", due_at=decision[1],
                       note=f"throttled: {decision[2]} sent in the window; folded into the next digest")
    if row.channel == "inbox":
        return _to_inbox(rt, row, now)
    started = time.perf_counter()
    try:
        _send_external(rt, row, rec, hook)
    except SendError as exc:
        _record_failure(rt, row, now, exc, int((time.perf_counter() - started) * 1000), hook)
        if isinstance(exc, ChannelDown):
            raise
        return
    _record_success(rt, row, now, int((time.perf_counter() - started) * 1000), hook)


def _send_external(rt, row, rec, hook) -> None:
    ch = channels_of(rt)
    ref = f"{row.id}:{row.event_id}"
    if row.channel == "email":
        if rec is None or not rec.email:
            raise SendError("no email address for this recipient", permanent=True)
        ch.email.send(rec.email, row.subject or "", row.body or "", row.html or "", ref)
    elif row.channel == "sms":
        if rec is None or not rec.mobile or not valid_mobile(rec.mobile):
            raise SendError("no valid mobile number for this recipient", permanent=True)
        for part in sms_parts(row.body or "", row.sms_rule or "split"):
            ch.sms.send(rec.mobile, part, ref)
    else:
        if hook is None or not hook.enabled:
            raise SendError("the webhook is disabled or deleted", permanent=True)
        ch.webhooks.send(hook.kind, hook.url, hook.secret, str(row.id), row.event_type, row.payload or {},
                         row.subject or "", row.body or "")


def _insert_inbox_item(insert):
    return insert(m.inbox_items).on_conflict_do_nothing()


def _write_inbox(s, delivery_id, recipient, event_id, event_type, subject, body, payload, attempt, now,
                 fresh: bool = False) -> None:
    """The inbox item and the try, in the caller's transaction (the item is unique on its delivery).
    `fresh`: the delivery was added by this transaction, so no item can exist for it yet and the
    item is a plain INSERT (no ON CONFLICT), which a pipelined consumer batch sends without waiting
    for its reply (crm_shared.inbox.pipelined)."""
    s.execute(store.prepared(s, "new inbox item" if fresh else "inbox item",
                             (lambda _: m.inbox_items.insert()) if fresh else _insert_inbox_item), dict(
        user_id=recipient, delivery_id=delivery_id, event_id=event_id, event_type=event_type,
        topic=topic_of(event_type), title=subject or event_type, body=body or "", refs=payload or {}, created_at=now))
    s.execute(_ATTEMPT, dict(
        delivery_id=delivery_id, attempt=attempt, at=now, ok=True, error=None, duration_ms=0))


def _to_inbox(rt, row, now) -> None:
    """The inbox item and the delivery's `sent` commit together: exactly one item."""
    with rt.uow() as uow:
        s = uow.session
        _write_inbox(s, row.id, row.recipient, row.event_id, row.event_type, row.subject, row.body,
                     row.payload, row.attempts + 1, now)
        _set_delivery(s, row.id, status="sent", sent_at=now, attempts=row.attempts + 1, last_attempt_at=now,
                      lease_until=None, last_error=None)
        uow.commit()


def to_inbox_now(s, service: str, rows: list[tuple[int, dict]], now) -> int:
    """In-app deliveries just planned and due now (`Planner.deliver_now`; their rows were inserted
    as `sent` by this transaction), written to the inbox in the planning transaction (the
    consumer's) rather than by the next dispatch run: an in-app item is never held or throttled, so
    waiting for the job's tick would only add latency."""
    for delivery_id, v in rows:
        # a child of the event's processing span, as the dispatch job's span would be (no-op when off)
        with tracing.span_from(service, "notify deliver inbox", None,
                               **{"crm.delivery_id": int(delivery_id), "crm.event_type": v["event_type"]}):
            _write_inbox(s, delivery_id, v["recipient"], v["event_id"], v["event_type"], v.get("subject"),
                         v.get("body"), v.get("payload"), 1, now, fresh=True)
    return len(rows)


def _record_success(rt, row, now, ms, hook) -> None:
    with rt.uow() as uow:
        s = uow.session
        s.execute(_ATTEMPT, dict(delivery_id=row.id, attempt=row.attempts + 1, at=now, ok=True, error=None,
                                 duration_ms=ms))
        _set_delivery(s, row.id, status="sent", sent_at=now, attempts=row.attempts + 1, last_attempt_at=now,
                      lease_until=None, last_error=None, note=None)
        if hook is not None:
            s.execute(update(m.webhooks).where(m.webhooks.c.id == hook.id).values(consecutive_failures=0))
        uow.commit()


def _record_failure(rt, row, now, exc: SendError, ms, hook) -> None:
    cfg = config_of(rt)
    attempts = row.attempts + 1
    error = str(exc)[:2000]
    first_try = _first_try(rt, row) or now
    nxt = None if exc.permanent else next_retry(
        attempts, first_try, now, cfg.retry_base_seconds, timedelta(hours=cfg.webhook_give_up_hours),
        cfg.retry_max_attempts)
    with rt.uow() as uow:
        s = uow.session
        s.execute(_ATTEMPT, dict(delivery_id=row.id, attempt=attempts, at=now, ok=False, error=error, duration_ms=ms))
        if nxt is not None:
            _set_delivery(s, row.id, status="pending", due_at=nxt, attempts=attempts, last_attempt_at=now,
                          last_error=error, lease_until=None, note=f"retry {attempts + 1} at {nxt.isoformat()}")
        else:
            _set_delivery(s, row.id, status="failed", attempts=attempts, last_attempt_at=now, last_error=error,
                          lease_until=None, note="gave up" if not exc.permanent else "permanent error")
            if hook is not None:
                _hook_failed(rt, s, hook, now, error)
        uow.commit()
    if nxt is None and hook is not None:
        cache.clear(rt.engine)  # the hook may be disabled now: plan no more for it
    log.warning("delivery failed", extra={"delivery_id": row.id, "channel": row.channel, "attempt": attempts,
                                          "error": error, "retry_at": nxt.isoformat() if nxt else None})


def _first_try(rt, row):
    if row.attempts == 0:
        return None
    with rt.engine.connect() as c:
        v = c.execute(select(func.min(m.delivery_attempts.c.at)).where(
            m.delivery_attempts.c.delivery_id == row.id)).scalar()
    return utc(v)


def _hook_failed(rt, s, hook, now, error) -> None:
    """A delivery failed for good: count it; past the limit, disable the webhook and tell its owner."""
    from .planner import Planner
    cfg = config_of(rt)
    failures = hook.consecutive_failures + 1
    values = {"consecutive_failures": failures}
    disable = hook.enabled and failures >= cfg.webhook_disable_after
    if disable:
        values.update(enabled=False, disabled_at=now, disabled_reason=error)
    s.execute(update(m.webhooks).where(m.webhooks.c.id == hook.id).values(**values))
    if disable:
        planner = Planner(s, now)
        context = {"webhook_id": str(hook.id), "url": hook.url, "error": error}
        for channel in ("inbox", "email"):
            planner.add(event_id=f"webhook-disabled:{hook.id}:{int(now.timestamp())}",
                        event_type="notice.webhook_disabled", recipient=hook.owner_id, channel=channel,
                        template="notice.webhook_disabled", context=context, kind="notice", critical=True,
                        payload={"webhook_id": str(hook.id)})
        planner.deliver_now(rt.name)
        log.warning("webhook disabled after repeated failures", extra={"webhook_id": hook.id, "error": error})
