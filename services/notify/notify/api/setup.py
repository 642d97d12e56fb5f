"""Subscriptions, templates (with preview) and webhooks: what is sent, how it reads, where it goes."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import delete, select, update

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.auth import current_user, require_roles
from crm_shared.web.errors import Conflict, NotFound, Problem

from .. import cache
from .. import models as m
from .. import store
from ..channels.net import BlockedAddress, check_target
from ..config import config_of
from ..domain import defaults, templates
from ..domain.rules import sms_parts
from ..schemas import (PreviewIn, PreviewOut, SubscriptionIn, SubscriptionOut, SubscriptionQuery, TemplateIn,
                       TemplateOut, WebhookIn, WebhookOut)

subscriptions_blp = Blueprint("subscriptions", __name__, url_prefix="/v1/subscriptions",
                              description="Which events reach whom, on which channels, with which template")
templates_blp = Blueprint("templates", __name__, url_prefix="/v1/templates",
                          description="Message templates (Jinja2 in a sandbox), zh-CN and en")
webhooks_blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks",
                         description="Signed webhooks and work-chat robots (WeCom, DingTalk, Feishu)")


def _commit(uow) -> None:
    """Commit a change of configuration: this process plans with it at once, others within
    `cache.TTL` (notify/cache.py)."""
    uow.commit()
    cache.clear(uow.session)


def _now():
    return runtime_of(current_app).clock.now()


def _sub_out(sub) -> dict:
    return {"id": sub.id, "event_type": sub.event_type, "recipient_kind": sub.recipient_kind,
            "recipient_value": sub.recipient_value, "channels": list(sub.channels), "template": sub.template,
            "condition": sub.condition, "critical": sub.critical, "default": sub.default, "enabled": sub.enabled}


@subscriptions_blp.route("")
class Subscriptions(MethodView):
    @subscriptions_blp.arguments(SubscriptionQuery, location="query")
    @subscriptions_blp.response(200, SubscriptionOut(many=True))
    def get(self, args):
        """The shipped defaults and the custom subscriptions"""
        return [_sub_out(s) for s in store.subscriptions_for(unit_of_work().session, args.get("event_type"))]

    @require_roles("admin")
    @subscriptions_blp.arguments(SubscriptionIn)
    @subscriptions_blp.response(201, SubscriptionOut)
    def post(self, data):
        """Add a subscription (admin)"""
        uow = unit_of_work()
        values = dict(data, template=data.get("template") or data["event_type"], enabled=True,
                      created_by=current_user().id, created_at=_now())
        sid = uow.session.execute(m.subscriptions.insert().values(**values)).inserted_primary_key[0]
        _commit(uow)
        return dict(values, id=str(sid), default=False)


@subscriptions_blp.route("/<int:sub_id>")
class Subscription(MethodView):
    @require_roles("admin")
    @subscriptions_blp.response(204)
    def delete(self, sub_id):
        """Remove a custom subscription (admin); the shipped defaults stay"""
        uow = unit_of_work()
        if not uow.session.execute(delete(m.subscriptions).where(m.subscriptions.c.id == sub_id)).rowcount:
            raise NotFound(f"No custom subscription {sub_id}.")
        _commit(uow)


# -- templates ---------------------------------------------------------------------------------------

def _tpl_out(row) -> dict:
    return {"id": str(row.id), "event_type": row.event_type, "channel": row.channel, "language": row.language,
            "subject": row.subject, "body": row.body, "sms_rule": row.sms_rule, "default": False}


def _shipped() -> list[dict]:
    return [{"id": f"default:{key}:{lang}", "event_type": key, "channel": "*", "language": lang, "subject": subj,
             "body": body, "sms_rule": "split", "default": True}
            for key, langs in sorted(defaults.DEFAULT_TEMPLATES.items()) for lang, (subj, body) in langs.items()]


def _find_template(tid: str) -> dict:
    if tid.startswith("default:"):
        for t in _shipped():
            if t["id"] == tid:
                return t
    elif tid.isdigit():
        row = unit_of_work().session.execute(select(m.templates).where(m.templates.c.id == int(tid))).first()
        if row is not None:
            return _tpl_out(row)
    raise NotFound(f"No template {tid}.")


def _refuse(exc: templates.TemplateError, field: str = "body"):
    raise Problem(422, "Unprocessable Entity", str(exc), errors={field: [str(exc)]})


@templates_blp.route("")
class Templates(MethodView):
    @templates_blp.response(200, TemplateOut(many=True))
    def get(self):
        """Shipped templates (channel "*") and custom ones"""
        rows = unit_of_work().session.execute(select(m.templates).order_by(m.templates.c.id)).all()
        return _shipped() + [_tpl_out(r) for r in rows]

    @require_roles("admin")
    @templates_blp.arguments(TemplateIn)
    @templates_blp.response(201, TemplateOut)
    def post(self, data):
        """Add a template (admin). It replaces the shipped one for its event type, channel and language.
        Unsafe templates (reaching beyond the payload, e.g. `''.__class__`) are refused with 422."""
        for field in ("subject", "body"):
            try:
                templates.check(data[field])
            except templates.TemplateError as exc:
                _refuse(exc, field)
        uow = unit_of_work()
        key = (m.templates.c.event_type == data["event_type"]) & (m.templates.c.channel == data["channel"]) & \
              (m.templates.c.language == data["language"])
        if uow.session.execute(select(m.templates.c.id).where(key)).first():
            raise Conflict("A template for this event type, channel and language exists; delete it first.")
        tid = uow.session.execute(m.templates.insert().values(
            **data, created_by=current_user().id, created_at=_now())).inserted_primary_key[0]
        _commit(uow)
        return dict(data, id=str(tid), default=False)


@templates_blp.route("/<tid>")
class Template(MethodView):
    @templates_blp.response(200, TemplateOut)
    def get(self, tid):
        """One template"""
        return _find_template(tid)

    @require_roles("admin")
    @templates_blp.response(204)
    def delete(self, tid):
        """Remove a custom template (admin)"""
        if not tid.isdigit():
            raise Conflict("Shipped templates cannot be deleted; add a custom one to replace it.")
        uow = unit_of_work()
        if not uow.session.execute(delete(m.templates).where(m.templates.c.id == int(tid))).rowcount:
            raise NotFound(f"No template {tid}.")
        _commit(uow)


@templates_blp.route("/<tid>/preview")
class Preview(MethodView):
    @templates_blp.arguments(PreviewIn)
    @templates_blp.response(200, PreviewOut)
    def post(self, data, tid):
        """Render a template with a sample payload: subject, text, HTML and the SMS parts"""
        t = _find_template(tid)
        try:
            r = templates.render(t["subject"], t["body"], data["payload"])
        except templates.TemplateError as exc:
            _refuse(exc, "payload")
        return {"subject": r.subject, "text": r.text, "html": r.html, "sms_parts": sms_parts(r.text, t["sms_rule"])}


# -- webhooks ----------------------------------------------------------------------------------------

def _hook_out(row) -> dict:
    d = row._asdict()
    d["id"] = str(row.id)
    return d


def _my_hook(hook_id: int):
    row = unit_of_work().session.execute(select(m.webhooks).where(m.webhooks.c.id == hook_id)).first()
    user = current_user()
    if row is None or (row.owner_id != user.id and not user.is_admin):
        raise NotFound(f"No webhook {hook_id}.")
    return row


@webhooks_blp.route("")
class Webhooks(MethodView):
    @webhooks_blp.response(200, WebhookOut(many=True))
    def get(self):
        """Your webhooks (admin: all). Secrets are never shown."""
        user = current_user()
        q = select(m.webhooks).order_by(m.webhooks.c.id)
        if not user.is_admin:
            q = q.where(m.webhooks.c.owner_id == user.id)
        return [_hook_out(r) for r in unit_of_work().session.execute(q)]

    @require_roles("admin", "sales_manager", "service_supervisor", "service")
    @webhooks_blp.arguments(WebhookIn)
    @webhooks_blp.response(201, WebhookOut)
    def post(self, data):
        """Register a webhook or robot. http(s) only; loopback, private and link-local targets are
        refused (SSRF) unless NOTIFY_WEBHOOK_ALLOW_PRIVATE=1 or listed in NOTIFY_WEBHOOK_ALLOW_NETWORKS."""
        rt = runtime_of(current_app)
        try:
            cfg = config_of(rt)
            check_target(data["url"], cfg.allow_private, cfg.allow_networks)
        except BlockedAddress as exc:
            raise Problem(422, "Unprocessable Entity", str(exc), errors={"url": [str(exc)]})
        except OSError as exc:
            raise Problem(422, "Unprocessable Entity", str(exc), errors={"url": [str(exc)]})
        uow = unit_of_work()
        values = dict(data, owner_id=current_user().id, enabled=True, consecutive_failures=0, created_at=_now())
        hid = uow.session.execute(m.webhooks.insert().values(**values)).inserted_primary_key[0]
        _commit(uow)
        row = uow.session.execute(select(m.webhooks).where(m.webhooks.c.id == hid)).first()
        return _hook_out(row)


@webhooks_blp.route("/<int:hook_id>")
class Webhook(MethodView):
    @webhooks_blp.response(200, WebhookOut)
    def get(self, hook_id):
        """One webhook"""
        return _hook_out(_my_hook(hook_id))

    @webhooks_blp.response(204)
    def delete(self, hook_id):
        """Delete a webhook; its pending deliveries are cancelled"""
        _my_hook(hook_id)
        uow = unit_of_work()
        uow.session.execute(delete(m.webhooks).where(m.webhooks.c.id == hook_id))
        uow.session.execute(update(m.deliveries).where(m.deliveries.c.recipient == f"webhook:{hook_id}",
                                                       m.deliveries.c.status == "pending")
                            .values(status="cancelled", note="webhook deleted"))
        _commit(uow)


@webhooks_blp.route("/<int:hook_id>/enable")
class EnableWebhook(MethodView):
    @webhooks_blp.response(200, WebhookOut)
    def post(self, hook_id):
        """Enable a webhook again after it was disabled for repeated failure"""
        _my_hook(hook_id)
        uow = unit_of_work()
        uow.session.execute(update(m.webhooks).where(m.webhooks.c.id == hook_id).values(
            enabled=True, consecutive_failures=0, disabled_at=None, disabled_reason=None))
        _commit(uow)
        return _hook_out(_my_hook(hook_id))
