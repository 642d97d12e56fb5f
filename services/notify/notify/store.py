"""Reads and small writes shared by the handlers, the jobs and the API (SQLAlchemy Core)."""
from __future__ import annotations

from collections import namedtuple

from sqlalchemy import String, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_shared.db import Statements

from . import cache
from . import models as m
from .domain import defaults, templates
from .domain.defaults import Subscription
from .domain.rules import DEFAULT_QUIET, normalise_language, other_language

MANAGER_ROLES = ("sales_manager", "service_supervisor")


def insert_ignore(session, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# Statements the consumer runs for every event, built once and run with their values as parameters
# (crm_shared.db.Statements): `prepared(session, name, build)`.
prepared = Statements().get


_RECIPIENT = select(m.recipients).where(m.recipients.c.id == bindparam("rid"))
_PREFERENCE = select(m.preferences).where(m.preferences.c.user_id == bindparam("uid"))


# -- recipients and preferences ----------------------------------------------------------------------

def recipient(session, rid: str):
    return session.execute(_RECIPIENT, {"rid": rid}).first()


# one recipient and their preferences in one statement (either may be missing)
Recipient = namedtuple("Recipient", [c.name for c in m.recipients.c])
Preference = namedtuple("Preference", [c.name for c in m.preferences.c])
_KEY = select(bindparam("rid", type_=String).label("id")).subquery("k")
_PERSON = select(*[c.label(f"r_{c.name}") for c in m.recipients.c],
                 *[c.label(f"p_{c.name}") for c in m.preferences.c]).select_from(
    _KEY.outerjoin(m.recipients, m.recipients.c.id == _KEY.c.id)
        .outerjoin(m.preferences, m.preferences.c.user_id == _KEY.c.id))
_R_COLS = len(m.recipients.c)


def person(session, rid: str, with_preference: bool = True):
    """(recipient row or None, preference row or None) of `rid`, in one SELECT; a customer has no
    preferences (`with_preference=False`: None)."""
    row = session.execute(_PERSON, {"rid": rid}).one()
    rec = Recipient(*row[:_R_COLS]) if row.r_id is not None else None
    pref = Preference(*row[_R_COLS:]) if with_preference and row.p_user_id is not None else None
    return rec, pref


def users_with_role(session, role: str, team_id: str | None = None) -> list[str]:
    q = select(m.recipients.c.id, m.recipients.c.roles).where(m.recipients.c.kind == "user")
    if team_id is not None:
        q = q.where(m.recipients.c.team_id == team_id)
    return sorted(r.id for r in session.execute(q) if role in (r.roles or []))


def team_managers(session, team_id: str | None) -> list[str]:
    if not team_id:
        return []
    out = set()
    for role in MANAGER_ROLES:
        out.update(users_with_role(session, role, team_id))
    return sorted(out)


def approvers(session, payload: dict) -> list[str]:
    """Who decides an approval step: its named approvers, or else every user holding its role (a
    team-scoped role such as sales_manager: only in `approver_team`), never the requester. Sales
    knows roles, not people: the recipients directory is where roles meet users."""
    named = [str(x) for x in payload.get("approver_ids") or [] if x]
    if named:
        ids = named
    elif payload.get("approver_role"):
        ids = users_with_role(session, payload["approver_role"], payload.get("approver_team") or None)
    else:
        ids = []
    return [i for i in ids if i != payload.get("requester_id")]


def preference(session, user_id: str):
    return session.execute(_PREFERENCE, {"uid": user_id}).first()


def language_of(rec, pref) -> str:
    if pref is not None and pref.language:
        return pref.language
    return normalise_language(rec.language if rec is not None else None)


def quiet_hours(rec, pref) -> tuple[str | None, str | None]:
    if pref is not None and pref.quiet_start is not None:
        return pref.quiet_start, pref.quiet_end
    return DEFAULT_QUIET


# -- subscriptions ---------------------------------------------------------------------------------

def _custom(row) -> Subscription:
    return Subscription(id=str(row.id), event_type=row.event_type, recipient_kind=row.recipient_kind,
                        recipient_value=row.recipient_value, channels=tuple(row.channels), template=row.template,
                        condition=row.condition, critical=row.critical, default=False, enabled=row.enabled)


_SUBSCRIPTIONS_OF = (select(m.subscriptions).where(m.subscriptions.c.event_type == bindparam("event_type"))
                     .order_by(m.subscriptions.c.id))


def _custom_subscriptions(session) -> dict[str, tuple[Subscription, ...]]:
    out: dict[str, list] = {}
    for r in session.execute(select(m.subscriptions).order_by(m.subscriptions.c.id)):
        out.setdefault(r.event_type, []).append(_custom(r))
    return {k: tuple(v) for k, v in out.items()}


_DEFAULTS_OF: dict[str, tuple[Subscription, ...]] = {}
for _sub in defaults.DEFAULT_SUBSCRIPTIONS:
    _DEFAULTS_OF[_sub.event_type] = _DEFAULTS_OF.get(_sub.event_type, ()) + (_sub,)


def planned_subscriptions(session, event_type: str) -> tuple[Subscription, ...]:
    """`subscriptions_for(session, event_type)`, the custom ones from the per-process cache
    (notify/cache.py: what the consumer reads for every event)."""
    custom = cache.get(session, "subscriptions", _custom_subscriptions).get(event_type, ())
    return _DEFAULTS_OF.get(event_type, ()) + custom


def subscriptions_for(session, event_type: str | None = None) -> list[Subscription]:
    subs = [s for s in defaults.DEFAULT_SUBSCRIPTIONS if event_type is None or s.event_type == event_type]
    if event_type is not None:
        rows = session.execute(_SUBSCRIPTIONS_OF, {"event_type": event_type})
    else:
        rows = session.execute(select(m.subscriptions).order_by(m.subscriptions.c.id))
    subs += [_custom(r) for r in rows]
    return subs


# -- templates -------------------------------------------------------------------------------------

def _custom_templates(session) -> dict[tuple[str, str], dict]:
    """(key, language) -> {channel or "*": row}: every custom template (unique on the three)."""
    out: dict = {}
    for r in session.execute(select(m.templates).order_by(m.templates.c.id)):
        out.setdefault((r.event_type, r.language), {})[r.channel] = r
    return out


def custom_template(session, key: str, channel: str, language: str):
    """The custom template for this channel, else the one for every channel ("*"), else None (from
    the per-process cache, notify/cache.py)."""
    by_channel = cache.get(session, "templates", _custom_templates).get((key, language))
    if not by_channel:
        return None
    return by_channel.get(channel) or by_channel.get("*")


def template_candidates(session, key: str, channel: str, language: str):
    """Candidates in order: custom then shipped in the wanted language, then the other language
    ("fall back to the other language rather than send nothing"). Yields (subject, body, rule, lang)."""
    for lang in (language, other_language(language)):
        row = custom_template(session, key, channel, lang)
        if row is not None:
            yield row.subject, row.body, row.sms_rule, lang
        shipped = defaults.DEFAULT_TEMPLATES.get(key, {}).get(lang)
        if shipped is not None:
            yield shipped[0], shipped[1], "split", lang


def render_for(session, key: str, channel: str, language: str, context: dict, rendered: dict | None = None):
    """The first candidate that renders. Returns (Rendered, sms_rule, language) or raises
    TemplateError with the reasons when none does. `rendered`: a dict kept by the caller while
    `context` does not change (one event's messages), so the same template is rendered once."""
    errors = []
    for subject, body, rule, lang in template_candidates(session, key, channel, language):
        try:
            return _render(subject, body, context, rendered), rule, lang
        except templates.TemplateError as exc:
            errors.append(f"{lang}: {exc}")
    raise templates.TemplateError("; ".join(errors) or f"no template for {key} ({channel})")


def _render(subject, body, context, rendered):
    if rendered is None:
        return templates.render(subject, body, context)
    hit = rendered.get((subject, body))
    if hit is not None and hit[0] is context:
        out = hit[1]
    else:
        try:
            out = templates.render(subject, body, context)
        except templates.TemplateError as exc:
            out = exc
        rendered[(subject, body)] = (context, out)
    if isinstance(out, templates.TemplateError):
        raise out
    return out


# -- webhooks --------------------------------------------------------------------------------------

_ENABLED_WEBHOOKS = select(m.webhooks).where(m.webhooks.c.enabled.is_(True))


def _enabled_webhooks(session) -> tuple:
    return tuple(session.execute(_ENABLED_WEBHOOKS).all())


def webhooks_for(session, event_type: str, payload: dict):
    """The enabled webhooks that want this event (the list from the per-process cache, notify/cache.py)."""
    from .domain.rules import matches
    rows = cache.get(session, "webhooks", _enabled_webhooks)
    return [r for r in rows if (event_type in (r.event_types or []) or "*" in (r.event_types or []))
            and matches(r.condition, payload)]


# -- cancellation ----------------------------------------------------------------------------------

def cancel(session, reason_keys: list[str], why: str) -> int:
    if not reason_keys:
        return 0
    res = session.execute(update(m.deliveries).where(and_(
        m.deliveries.c.reason_key.in_(reason_keys), m.deliveries.c.status.in_(("pending", "digest"))))
        .values(status="cancelled", note=why))
    return res.rowcount or 0
