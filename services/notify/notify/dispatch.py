"""Sends the deliveries that are due (the dispatch job). Time comes from `runtime.clock`.

1. Claim: due rows go from `pending` to `sending` with a lease, in a short transaction (on
   PostgreSQL with FOR UPDATE SKIP LOCKED, so two workers never take the same row; a worker that
   dies mid-way leaves rows whose lease runs out and are claimed again).
2. Send, channel by channel (and webhook endpoint by endpoint) in parallel threads, so a slow or
   dead channel (SMTP down) never holds up the others. A channel found down is not hammered: the rest of its rows wait for the
   next run, without counting a try. A channel's rows go in chunks of up to `CHUNK`: one read for
   the chunk (recipients and preferences, webhooks, throttle counts, first tries), one SMTP
   connection for its emails, then
3. record every try (`delivery_attempts`) and the outcome on the row, the whole chunk in one
   transaction (row by row if that transaction fails): sent; or retried later with exponential
   backoff; or failed for good (a webhook also counts towards being disabled); or held (quiet
   hours), or folded into a digest (throttle). A worker that dies between sending and recording
   leaves its rows `sending` until their lease runs out; they are then sent again (at least once,
   with the same Message-ID and X-CRM-Delivery header, so a receiver can tell)."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

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
CHUNK = 50  # a channel's rows read, sent (one SMTP connection) and recorded together


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
_ATTEMPT = m.delivery_attempts.insert()
_RELEASE = update(m.deliveries).where(m.deliveries.c.id == bindparam("delivery_id_"), m.deliveries.c.status == "sending")
# the chunk's read: IN lists as expanding parameters, so each statement is built and compiled once
_IDS = bindparam("ids", expanding=True)
_RECIPIENTS = select(m.recipients).where(m.recipients.c.id.in_(_IDS))
_PREFERENCES = select(m.preferences).where(m.preferences.c.user_id.in_(_IDS))
_WEBHOOKS = select(m.webhooks).where(m.webhooks.c.id.in_(_IDS))
_SENT_BY_RECIPIENT = (select(m.deliveries.c.recipient, func.count(), func.min(m.deliveries.c.sent_at))
                      .where(m.deliveries.c.recipient.in_(_IDS), m.deliveries.c.channel == bindparam("channel"),
                             m.deliveries.c.status == "sent", m.deliveries.c.sent_at > bindparam("since"))
                      .group_by(m.deliveries.c.recipient))
_FIRST_TRIES = (select(m.delivery_attempts.c.delivery_id, func.min(m.delivery_attempts.c.at))
                .where(m.delivery_attempts.c.delivery_id.in_(_IDS)).group_by(m.delivery_attempts.c.delivery_id))


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


@dataclass
class _Outcome:
    """What became of one row, recorded with the rest of its chunk (`_record`)."""
    row: object
    values: dict  # the delivery row's new columns
    attempt: dict | None = None  # the delivery_attempts row of a try
    release: bool = False  # back to pending only if still `sending` (no try counted)
    inbox: bool = False  # write the in-app item (and its try)
    hook_id: int | None = None
    hook_values: dict | None = None  # the webhook's new counters
    disabled: SimpleNamespace | None = None  # the webhook was disabled: tell its owner
    error: str | None = None  # the try failed: logged once recorded


class _Look:
    """The chunk's one read: recipients and preferences, webhooks, throttle counts, first tries.
    Throttle counts go up as the chunk sends, so a row sees the sends before it as it did when each
    row read its own count."""

    def __init__(self, rt, rows, now, cfg):
        self.people: dict = {}
        self.hooks: dict = {}
        self.sent: dict = {}  # (recipient, channel) -> [count, earliest sent_at] in the window
        self.first: dict = {}
        hook_ids = sorted({int(r.recipient.split(":", 1)[1]) for r in rows if r.recipient.startswith("webhook:")})
        rids = sorted({r.recipient for r in rows if not r.recipient.startswith("webhook:")})
        throttled = {}
        for r in rows:
            if not r.recipient.startswith("webhook:") and _throttle_applies(r):
                throttled.setdefault(r.channel, set()).add(r.recipient)
        retried = [int(r.id) for r in rows if r.attempts]
        with rt.uow() as uow:
            s = uow.session
            if hook_ids:
                # mutable copies: a failure counted for one row is seen by the next row of the hook
                self.hooks = {h.id: SimpleNamespace(**h._mapping) for h in s.execute(_WEBHOOKS, {"ids": hook_ids})}
            if rids:
                recs = {r.id: store.Recipient(*r) for r in s.execute(_RECIPIENTS, {"ids": rids})}
                prefs = {p.user_id: store.Preference(*p) for p in s.execute(_PREFERENCES, {"ids": rids})}
                self.people = {rid: (recs.get(rid), prefs.get(rid)) for rid in rids}
            since = now - timedelta(seconds=cfg.throttle_window_seconds)
            for channel, who in throttled.items():
                for rid, n, first in s.execute(_SENT_BY_RECIPIENT, {"ids": sorted(who), "channel": channel,
                                                                    "since": since}):
                    self.sent[(rid, channel)] = [n, utc(first)]
            if retried:
                self.first = {i: utc(at) for i, at in s.execute(_FIRST_TRIES, {"ids": retried})}

    def count_sent(self, row, now) -> None:
        c = self.sent.setdefault((row.recipient, row.channel), [0, now])
        c[0] += 1
        c[1] = min(c[1], now)


def _throttle_applies(row) -> bool:
    return row.channel != "inbox" and row.kind != "digest" and not row.critical


def _run_channel(rt, rows) -> None:
    cfg = config_of(rt)
    down = None
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if down is None:
            down = _run_chunk(rt, cfg, chunk)
        else:
            # wait as long as the row that found the channel down: left due now, the rows of a
            # channel that is down would fill every claim and starve the channels that work
            _record(rt, [_released(rt, row, down, timedelta(seconds=cfg.retry_base_seconds)) for row in chunk])


def _released(rt, row, why: str, delay: timedelta | None = None) -> _Outcome:
    """Back to pending without counting a try (the channel was down before this row's turn),
    due again after `delay`."""
    values = dict(status="pending", lease_until=None, note=f"waiting: {why}"[:500])
    if delay is not None:
        values["due_at"] = rt.clock.now() + delay
    return _Outcome(row, values, release=True)


def _run_chunk(rt, cfg, chunk) -> str | None:
    """Read, send and record one chunk of a channel's rows; returns why the channel is down, if it is."""
    now = rt.clock.now()
    try:
        look = _Look(rt, chunk, now, cfg)
    except Exception:  # noqa: BLE001 - the database hiccupped: the rows go back, tried again next run
        log.exception("dispatch read failed", extra={"delivery_ids": [r.id for r in chunk]})
        _record(rt, [_released(rt, row, "internal error, will be tried again") for row in chunk])
        return None
    outcomes, down = [], None
    with channels_of(rt).email.session() as smtp:
        for row in chunk:
            if down is not None:
                outcomes.append(_released(rt, row, down, timedelta(seconds=cfg.retry_base_seconds)))
                continue
            try:
                # continues the trace of the event that planned it (a no-op when tracing is off)
                with tracing.span_from(rt.name, f"notify deliver {row.channel}", row.trace_context,
                                       **{"crm.delivery_id": int(row.id), "crm.event_type": row.event_type}):
                    outcome, down = _deliver(rt, cfg, row, look, now, smtp)
                outcomes.append(outcome)
            except Exception:  # noqa: BLE001 - one bad row must not stop the others
                log.exception("delivery failed unexpectedly", extra={"delivery_id": row.id})
                outcomes.append(_released(rt, row, "internal error, will be tried again"))
    _record(rt, outcomes)
    return down


def _deliver(rt, cfg, row, look, now, smtp) -> tuple[_Outcome, str | None]:
    """Decide and send one row: its outcome, and why its channel is down if this row found it so."""
    rec = hook = None
    if row.recipient.startswith("webhook:"):
        hook = look.hooks.get(int(row.recipient.split(":", 1)[1]))
    else:
        rec, pref = look.people.get(row.recipient, (None, None))
        # quiet hours: an SMS is held until they end (not dropped); critical messages go at once
        if row.channel == "sms" and not row.critical:
            start, end = store.quiet_hours(rec, pref)
            until = quiet_until(now, rec.timezone if rec is not None else None, start, end)
            if until is not None:
                return _Outcome(row, dict(status="pending", due_at=until, lease_until=None,
                                          note=f"held for quiet hours until {until.isoformat()}")), None
    # throttle: beyond N per window the message goes into the next digest (not for webhooks)
    if not row.recipient.startswith("webhook:") and _throttle_applies(row):
        n, first = look.sent.get((row.recipient, row.channel), (0, None))
        if n >= cfg.throttle_max:
            due = first + timedelta(seconds=cfg.throttle_window_seconds)
            return _Outcome(row, dict(status="digest", digest_mode="throttle", due_at=due, lease_until=None,
                                      note=f"throttled: {n} sent in the window; folded into the next digest")), None
    attempts = row.attempts + 1
    if row.channel == "inbox":
        # the inbox item and the delivery's `sent` commit together: exactly one item
        return _Outcome(row, dict(status="sent", sent_at=now, attempts=attempts, last_attempt_at=now,
                                  lease_until=None, last_error=None), inbox=True), None
    started = time.perf_counter()
    try:
        _send_external(rt, row, rec, hook, smtp)
    except SendError as exc:
        ms = int((time.perf_counter() - started) * 1000)
        return _failure(cfg, row, look, now, exc, ms, hook), (str(exc) if isinstance(exc, ChannelDown) else None)
    ms = int((time.perf_counter() - started) * 1000)
    look.count_sent(row, now)
    out = _Outcome(row, dict(status="sent", sent_at=now, attempts=attempts, last_attempt_at=now, lease_until=None,
                             last_error=None, note=None),
                   attempt=dict(delivery_id=row.id, attempt=attempts, at=now, ok=True, error=None, duration_ms=ms))
    if hook is not None:
        hook.consecutive_failures = 0
        out.hook_id, out.hook_values = hook.id, {"consecutive_failures": 0}
    return out, None


def _failure(cfg, row, look, now, exc: SendError, ms, hook) -> _Outcome:
    attempts = row.attempts + 1
    error = str(exc)[:2000]
    first_try = look.first.get(int(row.id)) or now
    nxt = None if exc.permanent else next_retry(
        attempts, first_try, now, cfg.retry_base_seconds, timedelta(hours=cfg.webhook_give_up_hours),
        cfg.retry_max_attempts)
    attempt = dict(delivery_id=row.id, attempt=attempts, at=now, ok=False, error=error, duration_ms=ms)
    if nxt is not None:
        return _Outcome(row, dict(status="pending", due_at=nxt, attempts=attempts, last_attempt_at=now,
                                  last_error=error, lease_until=None, note=f"retry {attempts + 1} at {nxt.isoformat()}"),
                        attempt=attempt, error=error)
    out = _Outcome(row, dict(status="failed", attempts=attempts, last_attempt_at=now, last_error=error,
                             lease_until=None, note="gave up" if not exc.permanent else "permanent error"),
                   attempt=attempt, error=error)
    if hook is not None:
        # a delivery failed for good: count it; past the limit, disable the webhook and tell its owner
        hook.consecutive_failures += 1
        out.hook_id, out.hook_values = hook.id, {"consecutive_failures": hook.consecutive_failures}
        if hook.enabled and hook.consecutive_failures >= cfg.webhook_disable_after:
            hook.enabled = False
            out.hook_values.update(enabled=False, disabled_at=now, disabled_reason=error)
            out.disabled = SimpleNamespace(id=hook.id, url=hook.url, owner_id=hook.owner_id, error=error)
    return out


def _record(rt, outcomes: list[_Outcome]) -> None:
    """All the chunk's outcomes in one transaction; if it fails, each row in a transaction of its own
    (a row whose own write fails too stays `sending` and is taken again when its lease runs out)."""
    if not outcomes:
        return
    now = rt.clock.now()
    try:
        with rt.uow() as uow:
            _apply(rt, uow.session, outcomes, now)
            uow.commit()
        done = outcomes
    except Exception:  # noqa: BLE001
        log.exception("recording a dispatch chunk failed; recording its rows one by one",
                      extra={"delivery_ids": [o.row.id for o in outcomes]})
        done = []
        for o in outcomes:
            try:
                with rt.uow() as uow:
                    _apply(rt, uow.session, [o], now)
                    uow.commit()
                done.append(o)
            except Exception:  # noqa: BLE001
                log.exception("recording a delivery failed; it is tried again when its lease runs out",
                              extra={"delivery_id": o.row.id})
    if any(o.hook_values and "enabled" in o.hook_values for o in done):
        cache.clear(rt.engine)  # a hook is disabled now: plan no more for it
    for o in done:
        if o.error is not None:
            log.warning("delivery failed", extra={"delivery_id": o.row.id, "channel": o.row.channel,
                                                  "attempt": o.values["attempts"], "error": o.error,
                                                  "retry_at": o.values["due_at"].isoformat()
                                                  if o.values["status"] == "pending" else None})


def _apply(rt, s, outcomes: list[_Outcome], now) -> None:
    attempts = [o.attempt for o in outcomes if o.attempt is not None]
    if attempts:
        s.execute(_ATTEMPT, attempts)
    updates: dict[tuple, list] = {}  # executemany wants the same columns in every row
    for o in outcomes:
        r = o.row
        if o.inbox:
            _write_inbox(s, r.id, r.recipient, r.event_id, r.event_type, r.subject, r.body, r.payload,
                         o.values["attempts"], o.values["sent_at"])
        if o.release:
            s.execute(_RELEASE, {"delivery_id_": r.id, **o.values})
        else:
            updates.setdefault(tuple(sorted(o.values)), []).append({"delivery_id_": r.id, **o.values})
    for params in updates.values():
        s.execute(_SET_DELIVERY, params)
    for o in outcomes:
        if o.hook_values is not None:
            s.execute(update(m.webhooks).where(m.webhooks.c.id == o.hook_id).values(**o.hook_values))
        if o.disabled is not None:
            _notice_disabled(rt, s, o.disabled, now)


def topic_of(event_type: str) -> str:
    """What an inbox item is about: the event type's first word (lead, ticket, reminder ...)."""
    return event_type.split(".", 1)[0][:40]


def _send_external(rt, row, rec, hook, smtp) -> None:
    ch = channels_of(rt)
    ref = f"{row.id}:{row.event_id}"
    if row.channel == "email":
        if rec is None or not rec.email:
            raise SendError("no email address for this recipient", permanent=True)
        smtp.send(rec.email, row.subject or "", row.body or "", row.html or "", ref)
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


def _notice_disabled(rt, s, hook, now) -> None:
    """The webhook was disabled after repeated failures: tell its owner (inbox now, and email)."""
    from .planner import Planner
    planner = Planner(s, now)
    context = {"webhook_id": str(hook.id), "url": hook.url, "error": hook.error}
    for channel in ("inbox", "email"):
        planner.add(event_id=f"webhook-disabled:{hook.id}:{int(now.timestamp())}",
                    event_type="notice.webhook_disabled", recipient=hook.owner_id, channel=channel,
                    template="notice.webhook_disabled", context=context, kind="notice", critical=True,
                    payload={"webhook_id": str(hook.id)})
    planner.deliver_now(rt.name)
    log.warning("webhook disabled after repeated failures", extra={"webhook_id": hook.id, "error": hook.error})
