"""The life of an owned lead: follow-ups, status changes, edits, conversion, disqualification.

    new → contacted → qualified → converted;  disqualified (with reason) from any open or pooled
    status;  pooled while in the pool. Anything else is an illegal transition (409)."""
from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..models import follow_ups, lead_keys, leads
from . import access, load, normalise, scoring
from .errors import Conflict, Forbidden, Invalid
from .intake import find_duplicate, prepare
from .records import event_fields, get, history, team_code

TRANSITIONS = {
    "new": {"contacted", "disqualified"},
    "contacted": {"qualified", "disqualified"},
    "qualified": {"converted", "disqualified"},
    "pooled": {"disqualified"},
    "converted": set(),
    "disqualified": set(),
}
CHANNELS = ("call", "visit", "wechat", "email", "sms", "other")


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise Conflict(f"A lead cannot go from {current} to {target}.", status_now=current)


def _owned(session, lead_id, actor):
    row = access.load(session, lead_id, actor, for_update=True)
    if not access.can_manage(session, row, actor):
        if row["status"] == "pooled":
            raise Conflict("The lead is in the pool: claim it first.", status_now="pooled")
        raise Forbidden("Only the lead's owner or their manager may do this.")
    return row


def follow_up(uow, lead_id, actor, data: dict, now) -> dict:
    session = uow.session
    row = _owned(session, lead_id, actor)
    if row["status"] not in ("new", "contacted", "qualified"):
        raise Conflict(f"A {row['status']} lead takes no follow-ups.", status_now=row["status"])
    if data.get("channel") not in CHANNELS:
        raise Invalid({"channel": [f"Must be one of: {', '.join(CHANNELS)}."]})
    fid = session.execute(follow_ups.insert().values(
        lead_id=row["id"], author_id=actor.id or "system", channel=data["channel"], note=data.get("note"),
        outcome=data.get("outcome"), next_follow_up_at=data.get("next_follow_up_at"), created_at=now)).inserted_primary_key[0]
    values = dict(last_follow_up_at=now, next_follow_up_at=data.get("next_follow_up_at"), warned_for=None, updated_at=now)
    if row["status"] == "new":
        values["status"] = values["stage"] = "contacted"
    session.execute(update(leads).where(leads.c.id == row["id"]).values(**values))
    history(session, row["id"], "followed_up", now, actor, reason=f"{data['channel']}: {data.get('outcome') or ''}".strip(": "))
    new = get(session, row["id"])
    uow.emit("lead.followed_up", {**event_fields(new, uow.session), "follow_up_id": str(fid), "channel": data["channel"],
                                  "next_follow_up_at": data.get("next_follow_up_at")},
             aggregate_type="lead", aggregate_id=row["id"])
    return {"id": fid, "lead_id": row["id"], "author_id": actor.id, "created_at": now, **data}


def set_status(uow, lead_id, actor, target: str, now) -> dict:
    if target not in ("contacted", "qualified"):
        raise Invalid({"status": ["Use /convert or /disqualify for those; contacted or qualified here."]})
    session = uow.session
    row = _owned(session, lead_id, actor)
    check_transition(row["status"], target)
    session.execute(update(leads).where(leads.c.id == row["id"], leads.c.status == row["status"])
                    .values(status=target, stage=target, updated_at=now))
    history(session, row["id"], "status", now, actor, reason=f"{row['status']} → {target}")
    return dict(get(session, row["id"]))


def disqualify(uow, lead_id, actor, reason: str, now) -> dict:
    session = uow.session
    row = access.load(session, lead_id, actor, for_update=True)
    if row["status"] == "pooled" and not actor.is_manager:
        raise Conflict("Only a manager may disqualify a pooled lead.", status_now="pooled")
    if row["status"] != "pooled" and not access.can_manage(session, row, actor):
        raise Forbidden("Only the lead's owner or their manager may do this.")
    check_transition(row["status"], "disqualified")
    session.execute(update(leads).where(leads.c.id == row["id"]).values(
        status="disqualified", stage="disqualified", disqualify_reason=reason, updated_at=now, locked=False))
    load.moved(session, row["owner_id"], row["status"], row["owner_id"], "disqualified")
    history(session, row["id"], "disqualified", now, actor, reason=reason)
    new = get(session, row["id"])
    uow.emit("lead.disqualified", {**event_fields(new, uow.session), "reason": reason}, aggregate_type="lead", aggregate_id=row["id"])
    return dict(new)


def convert(uow, lead_id, actor, data: dict, now) -> dict:
    session = uow.session
    row = _owned(session, lead_id, actor)
    check_transition(row["status"], "converted")
    session.execute(update(leads).where(leads.c.id == row["id"]).values(
        status="converted", stage="converted", converted_at=now, updated_at=now, locked=False))
    load.moved(session, row["owner_id"], row["status"], row["owner_id"], "converted")
    history(session, row["id"], "converted", now, actor, reason=data.get("opportunity_name"))
    new = get(session, row["id"])
    uow.emit("lead.converted", {
        **event_fields(new, uow.session), "owner_id": new["owner_id"],
        # a rep's own lead has no routing team: the customer belongs to the converting user's team
        "team_code": team_code(session, new["team_id"]) or getattr(actor, "team", None),
        "contact": {"name": new["name"], "phone": new["phone"], "email": new["email"]},
        "referrer_customer_id": new["referrer_customer_id"], "opportunity_name": data["opportunity_name"],
        "expected_amount": data.get("expected_amount"), "currency": data.get("currency")},
        aggregate_type="lead", aggregate_id=row["id"])
    return dict(new)


def edit(uow, lead_id, actor, changes: dict, now) -> dict:
    """Change a lead's data: contact data is normalised and re-checked for duplicates (its keys are
    replaced), and the score is recomputed."""
    session = uow.session
    row = _owned(session, lead_id, actor)
    if row["status"] in ("converted", "disqualified"):
        raise Conflict(f"A {row['status']} lead cannot be changed.", status_now=row["status"])
    merged = {**{k: row[k] for k in ("name", "company", "phone", "email", "province", "city", "industry",
                                     "source", "campaign_id", "referrer_customer_id", "note")}, **changes}
    norm = prepare(merged)
    keys = normalise.keys(norm["phone"], norm["email"], norm["company"], norm["city"])
    old = set(session.execute(select(lead_keys.c.kind, lead_keys.c.value).where(lead_keys.c.lead_id == row["id"])).all())
    new_keys = [k for k in keys if k not in old]
    dup = find_duplicate(session, new_keys)
    if dup is not None:
        raise Conflict("Another lead or customer already has this contact data.", **dup.problem_extra())
    score, tier = scoring.score(norm, scoring.load(session))
    try:
        with session.begin_nested():
            gone = [k for k in old if k not in set(keys)]
            for kind, value in gone:
                session.execute(delete(lead_keys).where(lead_keys.c.kind == kind, lead_keys.c.value == value,
                                                        lead_keys.c.lead_id == row["id"]))
            if new_keys:
                session.execute(lead_keys.insert(), [{"kind": k, "value": v, "lead_id": row["id"]} for k, v in new_keys])
    except IntegrityError:
        raise Conflict("Another lead or customer already has this contact data.")
    session.execute(update(leads).where(leads.c.id == row["id"]).values(
        **{k: norm[k] for k in merged if k in norm}, email_domain=norm["email_domain"], score=score, tier=tier,
        updated_at=now))
    history(session, row["id"], "edited", now, actor, reason=", ".join(sorted(changes)))
    return dict(get(session, row["id"]))
