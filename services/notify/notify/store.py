"""Reads and small writes shared by the handlers, the jobs and the API (SQLAlchemy Core)."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import models as m
from .domain import defaults, templates
from .domain.defaults import Subscription
from .domain.rules import DEFAULT_QUIET, normalise_language, other_language

MANAGER_ROLES = ("sales_manager", "service_supervisor")


def insert_ignore(session, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# Statements the consumer runs for every event, built once and run with their values as parameters:
# building a statement and its cache key with the values inside costs more CPU than running it.
_PREPARED: dict = {}


def prepared(session, name: str, build):
    """The statement `build(dialect_insert)` under `name`, built once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _PREPARED.get((dialect, name))
    if stmt is None:
        stmt = _PREPARED[(dialect, name)] = build(postgresql.insert if dialect == "postgresql" else sqlite.insert)
    return stmt


_RECIPIENT = select(m.recipients).where(m.recipients.c.id == bindparam("rid"))
_PREFERENCE = select(m.preferences).where(m.preferences.c.user_id == bindparam("uid"))


# -- recipients and preferences ----------------------------------------------------------------------

def recipient(session, rid: str):
    return session.execute(_RECIPIENT, {"rid": rid}).first()


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


def subscriptions_for(session, event_type: str | None = None) -> list[Subscription]:
    subs = [s for s in defaults.DEFAULT_SUBSCRIPTIONS if event_type is None or s.event_type == event_type]
    if event_type is not None:
        rows = session.execute(_SUBSCRIPTIONS_OF, {"event_type": event_type})
    else:
        rows = session.execute(select(m.subscriptions).order_by(m.subscriptions.c.id))
    subs += [_custom(r) for r in rows]
    return subs


# -- templates -------------------------------------------------------------------------------------

_CUSTOM_TEMPLATE = select(m.templates).where(
    m.templates.c.event_type == bindparam("key"), m.templates.c.language == bindparam("lang"),
    or_(m.templates.c.channel == bindparam("channel"), m.templates.c.channel == "*")
).order_by((m.templates.c.channel == "*").asc())


def _custom_template(session, key, channel, language):
    return session.execute(_CUSTOM_TEMPLATE, {"key": key, "lang": language, "channel": channel}).first()


def template_candidates(session, key: str, channel: str, language: str, cache: dict | None = None):
    """Candidates in order: custom then shipped in the wanted language, then the other language
    ("fall back to the other language rather than send nothing"). Yields (subject, body, rule, lang)."""
    for lang in (language, other_language(language)):
        if cache is None:
            row = _custom_template(session, key, channel, lang)
        else:
            if (key, channel, lang) not in cache:
                cache[(key, channel, lang)] = _custom_template(session, key, channel, lang)
            row = cache[(key, channel, lang)]
        if row is not None:
            yield row.subject, row.body, row.sms_rule, lang
        shipped = defaults.DEFAULT_TEMPLATES.get(key, {}).get(lang)
        if shipped is not None:
            yield shipped[0], shipped[1], "split", lang


def render_for(session, key: str, channel: str, language: str, context: dict, cache: dict | None = None):
    """The first candidate that renders. Returns (Rendered, sms_rule, language) or raises
    TemplateError with the reasons when none does."""
    errors = []
    for subject, body, rule, lang in template_candidates(session, key, channel, language, cache):
        try:
            return templates.render(subject, body, context), rule, lang
        except templates.TemplateError as exc:
            errors.append(f"{lang}: {exc}")
    raise templates.TemplateError("; ".join(errors) or f"no template for {key} ({channel})")


# -- webhooks --------------------------------------------------------------------------------------

_ENABLED_WEBHOOKS = select(m.webhooks).where(m.webhooks.c.enabled.is_(True))


def webhooks_for(session, event_type: str, payload: dict):
    from .domain.rules import matches
    rows = session.execute(_ENABLED_WEBHOOKS).all()
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
