"""Turns an event into `deliveries` rows, inside the consumer's transaction. Nothing leaves the
service here: the dispatch job sends email, SMS and webhooks when due; in-app items due now are
written to the inbox in this transaction (`deliver_now`). The rows are unique on (event id, recipient, channel), so
planning the same event twice (a redelivery that got past the inbox, a replayed dead letter)
cannot make a second message.

`add` only prepares a row; `flush` (which `deliver_now` calls) writes the rows prepared so far in
one statement. Whoever plans calls one of the two before reading the rows or committing."""
from __future__ import annotations

from datetime import datetime

from . import models as m
from . import store
from .domain import defaults, templates
from .domain.templates import plain as jsonable
from .domain.rules import add_business_day, matches, next_hour, next_local_time, parse_hhmm, utc

PERSON_CHANNELS = ("inbox", "email", "sms")
CUSTOMER_CHANNELS = ("email", "sms")
# payload fields that are secrets for their recipient alone: left out of what webhooks receive
WEBHOOK_SECRET_FIELDS = frozenset({"csat_token"})


def refs_of(payload: dict) -> dict:
    """The ids a message is about (lead_id, ticket_id...), for the inbox and links."""
    return {k: jsonable(v) for k, v in payload.items()
            if (k.endswith("_id") or k.endswith("_ids")) and k != "event_id" and v not in (None, [])}


def _insert_delivery(insert):
    # unique on (event id, recipient, channel): a second planning of the same message adds nothing.
    # Run with a list of rows: one INSERT … VALUES (…), (…) RETURNING (SQLAlchemy's insertmanyvalues),
    # which returns only the rows added, in no set order, hence the key columns.
    d = m.deliveries
    return insert(d).on_conflict_do_nothing().returning(d.c.id, d.c.event_id, d.c.recipient, d.c.channel)


class Planner:
    """`people`: a cache of recipients and their preferences to share (handlers.handle passes one per
    consumer batch); by default one of its own, so a recipient is read once per Planner."""

    def __init__(self, session, now: datetime, people: dict | None = None):
        self.s = session
        self.now = now
        self.created = 0
        self.pending: list[dict] = []   # rows `add` prepared, written by `flush`
        # in-app rows due now that nothing defers: (delivery id, row values), written to the inbox in
        # this same transaction by `deliver_now` instead of waiting for the dispatch job's tick
        self.immediate: list[tuple[int, dict]] = []
        self._people: dict = {} if people is None else people  # recipient id -> (recipient, preference row)
        self._rendered: dict = {}    # (subject, body) -> (context, Rendered), see store.render_for

    def _person(self, rid: str):
        if rid not in self._people:
            self._people[rid] = store.person(self.s, rid, with_preference=not rid.startswith("customer:"))
        return self._people[rid]

    # -- one message -----------------------------------------------------------------------------
    def add(self, *, event_id: str, event_type: str, recipient: str, channel: str, template: str, context: dict,
            kind: str = "message", critical: bool = False, due_at: datetime | None = None,
            reason_key: str | None = None, language: str | None = None, payload: dict | None = None,
            honour_preferences: bool = True) -> bool:
        """Prepare one message (written by `flush`); False when the recipient's preferences leave
        this channel out."""
        rec = pref = None
        if not recipient.startswith("webhook:"):
            rec, pref = self._person(recipient)
        if honour_preferences and not critical and pref is not None:
            chosen = (pref.channels or {}).get(event_type)
            if chosen is not None and channel not in chosen:
                return False
        lang = language or store.language_of(rec, pref)
        status, digest_mode = "pending", None
        due = utc(due_at or self.now)
        if not critical and pref is not None and channel in ("email", "sms"):
            digest_mode = (pref.digest or {}).get(event_type)
            if digest_mode:
                status = "digest"
                tz = rec.timezone if rec is not None else None
                due = next_hour(max(due, self.now)) if digest_mode == "hourly" else \
                    next_local_time(max(due, self.now), tz, parse_hhmm("09:00"))
        values = dict(event_id=event_id, event_type=event_type, recipient=recipient, channel=channel, kind=kind,
                      critical=critical, status=status, digest_mode=digest_mode, due_at=due, attempts=0,
                      reason_key=reason_key, created_at=self.now, payload=payload or refs_of(context),
                      language=lang, subject=None, body=None, html=None, sms_rule=None, last_error=None,
                      sent_at=None, last_attempt_at=None)
        try:
            rendered, rule, used_lang = store.render_for(self.s, template, channel, lang, context, self._rendered)
            values.update(language=used_lang, subject=rendered.subject, body=rendered.text, html=rendered.html,
                          sms_rule=rule)
        except templates.TemplateError as exc:
            if channel != "webhook":  # a generic webhook carries the event itself; the text is optional
                # logged in the delivery log rather than failing the event for every other recipient
                values.update(status="failed", last_error=f"template: {exc}")
        # the dispatch job applies no rule to an in-app item that is due (quiet hours and digests are
        # for email/SMS, the throttle skips the inbox): it is sent now, in this transaction
        if channel == "inbox" and values["status"] == "pending" and due <= utc(self.now):
            values.update(status="sent", attempts=1, sent_at=self.now, last_attempt_at=self.now)
        self.pending.append(values)
        return True

    def flush(self) -> int:
        """Write the rows prepared so far, in one statement; returns how many were new (a row
        already there, or prepared twice, is added once). The in-app rows due now that were added
        wait for `deliver_now`."""
        if not self.pending:
            return 0
        rows, self.pending = self.pending, []
        before = self.created
        added = {(r.event_id, r.recipient, r.channel): r.id
                 for r in self.s.execute(store.prepared(self.s, "plan", _insert_delivery), rows)}
        for values in rows:
            key = (values["event_id"], values["recipient"], values["channel"])
            if key in added and values["status"] == "sent":
                self.immediate.append((added.pop(key), values))
            elif key in added:
                added.pop(key)
            else:
                continue
            self.created += 1
        return self.created - before

    def deliver_now(self, service: str) -> int:
        """Write the in-app items planned so far that are due now (their delivery rows were
        inserted as `sent`), in the planner's transaction: the inbox item, the try and the delivery
        commit together with the event (the inbox item is unique on the delivery, so there is
        exactly one). Writes the rows prepared so far first. Returns how many."""
        self.flush()
        if not self.immediate:
            return 0
        from .dispatch import to_inbox_now
        rows, self.immediate = self.immediate, []
        return to_inbox_now(self.s, service, rows, self.now)

    # -- subscriptions ---------------------------------------------------------------------------
    def recipients_of(self, sub: defaults.Subscription, payload: dict) -> list[str]:
        kind, value = sub.recipient_kind, sub.recipient_value
        if kind == "field":
            v = payload.get(value)
            ids = v if isinstance(v, list) else [v]
            return [str(x) for x in ids if x not in (None, "")]
        if kind == "role":
            return store.users_with_role(self.s, value)
        if kind == "team_manager":
            # lead events: `team_code` is the team as users' tokens name it (`team_id` is leads' row id)
            team = payload["team_code"] if "team_code" in payload else payload.get("team_id")
            return store.team_managers(self.s, team)
        if kind == "customer":
            cid = payload.get("customer_id")
            return [f"customer:{cid}"] if cid else []
        if kind == "user":
            return [value] if value else []
        if kind == "approvers":
            return store.approvers(self.s, payload)
        return []

    def plan_subscriptions(self, env, payload: dict, reason_key: str | None, extra: dict | None = None):
        """`extra`: values the templates may use besides the payload (e.g. the survey link)."""
        subs = store.planned_subscriptions(self.s, env.type)
        if not subs:
            return
        context = dict(payload, **(extra or {}), event_type=env.type, event_id=env.id)
        actor = payload.get("by_user_id")
        for sub in sorted(subs, key=lambda s: not s.critical):
            if not sub.enabled or not matches(sub.condition, payload):
                continue
            for rid in self.recipients_of(sub, payload):
                if actor and rid == actor and not sub.critical:
                    continue  # nobody needs telling what they did themselves
                allowed = self._customer_channels(rid) if rid.startswith("customer:") else PERSON_CHANNELS
                for channel in sub.channels:
                    if channel in allowed:
                        self.add(event_id=env.id, event_type=env.type, recipient=rid, channel=channel,
                                 template=sub.template, context=context, critical=sub.critical,
                                 reason_key=reason_key)

    def _customer_channels(self, rid: str) -> tuple[str, ...]:
        """A customer is written to only where we have their address (an unknown customer, or one
        without email, is no failure: there is just nothing to send)."""
        rec = self._person(rid)[0]
        if rec is None:
            return ()
        return tuple(c for c, field in (("email", "email"), ("sms", "mobile")) if getattr(rec, field, None))

    def plan_webhooks(self, env, payload: dict, reason_key: str | None):
        hooks = store.webhooks_for(self.s, env.type, payload)
        if not hooks:
            return
        # secret links (the customer's survey token) never leave through a webhook: the receiver is
        # a third party, and the token alone lets anyone answer the survey as the customer
        public = {k: v for k, v in payload.items() if k not in WEBHOOK_SECRET_FIELDS}
        context = dict(public, event_type=env.type, event_id=env.id)
        envelope = {"id": env.id, "type": env.type, "version": env.version, "occurred_at": env.occurred_at,
                    "producer": env.producer, "payload": jsonable(public)}
        for hook in hooks:
            self.add(event_id=env.id, event_type=env.type, recipient=f"webhook:{hook.id}", channel=hook.kind,
                     template=env.type, context=context, reason_key=None, language=hook.language,
                     payload=envelope, honour_preferences=False)

    # -- schedules -------------------------------------------------------------------------------
    def follow_up_reminder(self, env, payload: dict):
        at, owner = payload.get("next_follow_up_at"), payload.get("owner_id")
        if not at or not owner:
            return
        context = dict(payload, event_type="reminder.follow_up", event_id=env.id)
        for channel in defaults.FOLLOW_UP_CHANNELS:
            self.add(event_id=f"{env.id}:remind", event_type="reminder.follow_up", recipient=owner, channel=channel,
                     template="reminder.follow_up", context=context, kind="reminder", due_at=max(at, self.now),
                     reason_key=f"followup:{payload['lead_id']}")

    def approval_reminder(self, env, payload: dict):
        context = dict(payload, event_type="reminder.approval", event_id=env.id)
        try:
            asked = datetime.fromisoformat(env.occurred_at)
        except (TypeError, ValueError):
            asked = self.now
        for approver in store.approvers(self.s, payload):
            rec = store.recipient(self.s, approver)
            due = add_business_day(asked, rec.timezone if rec is not None else None)
            for channel in defaults.APPROVAL_REMINDER_CHANNELS:
                self.add(event_id=f"{env.id}:remind", event_type="reminder.approval", recipient=approver,
                         channel=channel, template="reminder.approval", context=context, kind="reminder",
                         due_at=max(due, self.now), reason_key=f"approval:{payload['approval_id']}:{payload['step']}")
