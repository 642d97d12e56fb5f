"""What the notify service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed. It writes rows
(deliveries, the customer read model, cancellations) and the in-app items that are due now; the
dispatch job sends the rest (email, SMS, webhooks, scheduled or deferred messages)."""
from __future__ import annotations

from sqlalchemy import select, update

from crm_shared import tracing
from crm_shared.events.catalogue import bindings_for

from . import models as m
from . import store
from .planner import Planner
from .domain.rules import normalise_language, valid_zone


def _customer(uow, payload: dict) -> None:
    """customer.created / customer.updated: the customer's contact data, language, time zone and
    birthday (a read model). An event older than what we hold (revision) is ignored."""
    s, now = uow.session, uow.runtime.clock.now()
    rid = f"customer:{payload['customer_id']}"
    row = s.execute(select(m.recipients.c.revision).where(m.recipients.c.id == rid)).first()
    rev = payload.get("revision")
    if row is not None and row.revision is not None and rev is not None and rev < row.revision:
        return
    tz = payload.get("timezone")
    values = dict(kind="customer", name=payload.get("name"), email=payload.get("email"), mobile=payload.get("phone"),
                  language=normalise_language(payload.get("language")),
                  timezone=tz if tz and valid_zone(tz) else "Asia/Shanghai", roles=[],
                  team_id=payload.get("team_id"), owner_id=payload.get("owner_id"), birthday=payload.get("birthday"),
                  revision=rev, updated_at=now)
    if row is None:
        s.execute(m.recipients.insert().values(id=rid, birthday_greetings=True, holiday_greetings=True, **values))
    else:
        s.execute(update(m.recipients).where(m.recipients.c.id == rid).values(**values))
    _people(s).pop(rid, None)  # the batch's later events read the new row


_PEOPLE = "notify_people"  # session.info: recipient id -> (recipient, preference row), for one batch


def _people(session) -> dict:
    """The recipients and preferences read so far in this session: a consumer batch's events share
    one session (crm_shared.inbox), and each of them would otherwise read the same rep or manager
    again, a SELECT that waits for the batch's pipelined writes. Nothing in a batch changes a
    preference, and `_customer` drops the recipient it writes; a change committed elsewhere while
    the batch runs (a few milliseconds) is seen by the next batch, as if the event had come first.
    Kept with the session's transaction: a session that lives on into another transaction starts
    with an empty cache there."""
    tx = session.get_transaction()
    if tx is None:  # nothing ran yet: begin (a batch's joined session only joins its transaction)
        session.connection()
        tx = session.get_transaction()
    held = session.info.get(_PEOPLE)
    if held is None or held[0] is not tx:
        held = session.info[_PEOPLE] = (tx, {})
    return held[1]


# what makes a scheduled or held message pointless: event type -> reason keys to cancel
def _reasons_gone(event_type: str, p: dict) -> list[str]:
    if event_type in ("lead.followed_up", "lead.recycled"):
        return [f"followup:{p['lead_id']}"]
    if event_type == "lead.assigned" and p.get("previous_owner_id") and p.get("previous_owner_id") != p.get("owner_id"):
        return [f"followup:{p['lead_id']}"]
    if event_type == "approval.decided":  # this step is decided (events of later steps keep theirs)
        return [f"approval:{p['approval_id']}:{p['step']}"]
    if event_type == "approval.requested":  # a new step: the earlier steps' reminders are moot
        return [f"approval:{p['approval_id']}:{s}" for s in range(1, p["step"])]
    if event_type == "payment.received":
        return [f"payment:{i}" for i in p.get("installment_ids") or []]
    if event_type in ("contract.renewed", "contract.terminated"):
        return [f"contract:{p['contract_id']}"]
    if event_type == "ticket.resolved":
        return [f"ticket:{p['ticket_id']}"]
    return []


# what the messages of an event are about, so a later event can cancel them while they wait
def _reason_of(event_type: str, p: dict) -> str | None:
    if event_type == "payment.overdue":
        return f"payment:{p['installment_id']}"
    if event_type == "contract.expiring":
        return f"contract:{p['contract_id']}"
    if event_type in ("ticket.sla_warning",):
        return f"ticket:{p['ticket_id']}"
    if event_type == "lead.recycle_warning":
        return f"followup:{p['lead_id']}"
    if event_type == "approval.requested":
        return f"approval:{p['approval_id']}:{p['step']}"
    return None


def _links(runtime, event_type: str, p: dict) -> dict:
    """Links the messages of an event carry: the customer's survey link on a resolved ticket."""
    if event_type == "ticket.resolved" and p.get("csat_token"):
        from urllib.parse import quote
        from .config import config_of
        return {"csat_url": config_of(runtime).csat_url.replace("{token}", quote(str(p["csat_token"]), safe=""))}
    return {}


def _sales_reminder(s, env, payload: dict) -> bool:
    """Sales re-sends `approval.requested` with `reminder: true` when a step has waited past its
    policy's limit, and notify schedules a reminder of its own after a business day: one reminder is
    enough. Sales' takes the place of ours while ours still waits; if ours went out already, the
    approver has been reminded and sales' is not sent to people again. True: skip the people."""
    key = f"approval:{payload['approval_id']}:{payload['step']}"
    d = m.deliveries
    sent = s.execute(select(d.c.id).where(d.c.reason_key == key, d.c.kind == "reminder", d.c.status == "sent")
                     .limit(1)).first()
    s.execute(update(d).where(d.c.reason_key == key, d.c.kind == "reminder", d.c.status.in_(("pending", "digest")))
              .values(status="cancelled", note=f"cancelled: sales reminded ({env.id})"))
    return sent is not None


def handle(uow, env, payload: dict) -> None:
    s = uow.session
    if env.type in ("customer.created", "customer.updated"):
        _customer(uow, payload)
    store.cancel(s, _reasons_gone(env.type, payload), f"cancelled: {env.type} {env.id}")
    planner = Planner(s, uow.runtime.clock.now(), people=_people(s))
    reason = _reason_of(env.type, payload)
    reminded = env.type == "approval.requested" and bool(payload.get("reminder"))
    if not (reminded and _sales_reminder(s, env, payload)):
        planner.plan_subscriptions(env, payload, reason, _links(uow.runtime, env.type, payload))
    planner.plan_webhooks(env, payload, reason)
    if env.type == "lead.followed_up":
        planner.follow_up_reminder(env, payload)
    elif env.type == "approval.requested" and not reminded:
        planner.approval_reminder(env, payload)
    # in-app items due now go to the inbox in this transaction (email, SMS, webhooks, and whatever
    # is scheduled, held or digested, stay for the dispatch job)
    planner.deliver_now(uow.runtime.name)
    trace = tracing.current_context(uow.runtime.name) if planner.created else None  # None unless tracing is on
    if trace:
        # the deliveries continue this event's trace when the dispatch job sends them
        s.execute(update(m.deliveries).where(m.deliveries.c.event_id == env.id, m.deliveries.c.trace_context.is_(None))
                  .values(trace_context=trace))


# Every event the catalogue binds to notify goes through the same handler.
HANDLERS: dict = {event_type: handle for event_type in bindings_for("notify")}
