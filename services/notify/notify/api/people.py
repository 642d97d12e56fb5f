"""Recipients (users' contact data), the caller's own preferences, and customers' care switches."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import update

from crm_shared.web.app import runtime_of, unit_of_work
from crm_shared.web.auth import current_user, require_roles
from crm_shared.web.errors import NotFound

from .. import models as m
from .. import store
from ..domain import defaults
from ..domain.rules import DEFAULT_QUIET
from ..schemas import CareIn, PreferencesIn, PreferencesOut, RecipientIn, RecipientOut

recipients_blp = Blueprint("recipients", __name__, url_prefix="/v1/recipients",
                           description="Users' contact data: email, mobile, language, time zone, roles, team")
preferences_blp = Blueprint("preferences", __name__, url_prefix="/v1/preferences",
                            description="The caller's own preferences: channels, quiet hours, digests, language")
customers_blp = Blueprint("customers", __name__, url_prefix="/v1/customers",
                          description="Customers as recipients (from customer.* events); greetings on or off")


def _may_edit(user_id: str) -> None:
    u = current_user()
    if not (u.id == user_id or u.is_admin or u.has("service")):
        raise NotFound(f"No recipient {user_id}.")


@recipients_blp.route("/<user_id>")
class Recipient(MethodView):
    @recipients_blp.response(200, RecipientOut)
    def get(self, user_id):
        """A user's contact data (yourself; admin and service accounts: anyone)"""
        _may_edit(user_id)
        row = store.recipient(unit_of_work().session, user_id)
        if row is None or row.kind != "user":
            raise NotFound(f"No recipient {user_id}.")
        return row._asdict()

    @recipients_blp.arguments(RecipientIn)
    @recipients_blp.response(200, RecipientOut)
    def put(self, data, user_id):
        """Create or replace a user's contact data (yourself; admin and the identity sync: anyone).
        Only admin and service accounts may set roles and team."""
        _may_edit(user_id)
        if user_id.startswith("customer:") or user_id.startswith("webhook:") or len(user_id) > 64:
            raise NotFound(f"No recipient {user_id}.")
        u = current_user()
        uow = unit_of_work()
        s = uow.session
        row = store.recipient(s, user_id)
        if not (u.is_admin or u.has("service")):
            data["roles"] = list(row.roles) if row is not None else list(u.roles)
            data["team_id"] = row.team_id if row is not None else u.team
        values = dict(data, kind="user", updated_at=runtime_of(current_app).clock.now())
        if row is None:
            s.execute(m.recipients.insert().values(id=user_id, birthday_greetings=True, holiday_greetings=True, **values))
        else:
            s.execute(update(m.recipients).where(m.recipients.c.id == user_id).values(**values))
        uow.commit()
        return store.recipient(s, user_id)._asdict()


def _critical_list() -> list[dict]:
    return [{"event_type": s.event_type, "channels": list(s.channels), "condition": s.condition}
            for s in defaults.DEFAULT_SUBSCRIPTIONS if s.critical]


def _pref_out(row) -> dict:
    start, end = (row.quiet_start, row.quiet_end) if row is not None and row.quiet_start else DEFAULT_QUIET
    return {"language": row.language if row is not None else None, "quiet_hours": {"start": start, "end": end},
            "channels": (row.channels if row is not None else {}) or {},
            "digest": (row.digest if row is not None else {}) or {}, "critical": _critical_list()}


@preferences_blp.route("")
class Preferences(MethodView):
    @preferences_blp.response(200, PreferencesOut)
    def get(self):
        """Your preferences, and the critical subscriptions they cannot turn off"""
        return _pref_out(store.preference(unit_of_work().session, current_user().id))

    @preferences_blp.arguments(PreferencesIn)
    @preferences_blp.response(200, PreferencesOut)
    def put(self, data):
        """Replace your preferences. `channels` maps an event type to the channels you accept for it
        ([] mutes it); critical subscriptions (SLA breach, payment 30 days overdue) still reach you."""
        uow = unit_of_work()
        s = uow.session
        uid = current_user().id
        quiet = data.get("quiet_hours")
        values = dict(language=data.get("language"), quiet_start=quiet["start"] if quiet else None,
                      quiet_end=quiet["end"] if quiet else None, channels=data.get("channels") or {},
                      digest=data.get("digest") or {}, updated_at=runtime_of(current_app).clock.now())
        if store.preference(s, uid) is None:
            s.execute(m.preferences.insert().values(user_id=uid, **values))
        else:
            s.execute(update(m.preferences).where(m.preferences.c.user_id == uid).values(**values))
        uow.commit()
        return _pref_out(store.preference(s, uid))


@customers_blp.route("/<customer_id>")
class Customer(MethodView):
    @require_roles("sales_rep", "sales_manager", "general_manager", "service_agent", "service_supervisor", "service")
    @customers_blp.response(200, RecipientOut)
    def get(self, customer_id):
        """A customer as a recipient (contact data from customer.* events)"""
        return _customer(customer_id)._asdict()


def _customer(customer_id):
    row = store.recipient(unit_of_work().session, f"customer:{customer_id}")
    u = current_user()
    if row is None:
        raise NotFound(f"No customer {customer_id}.")
    if u.has("sales_rep") and not (u.is_admin or u.has("sales_manager", "general_manager", "service_agent",
                                                       "service_supervisor", "service")) and row.owner_id != u.id:
        raise NotFound(f"No customer {customer_id}.")
    return row


@customers_blp.route("/<customer_id>/care")
class Care(MethodView):
    @require_roles("sales_rep", "sales_manager", "general_manager", "service_agent", "service_supervisor", "service")
    @customers_blp.arguments(CareIn)
    @customers_blp.response(200, RecipientOut)
    def put(self, data, customer_id):
        """Turn a customer's birthday or holiday greetings on or off (on the customer's request)"""
        _customer(customer_id)
        values = {k: v for k, v in data.items() if v is not None}
        uow = unit_of_work()
        if values:
            uow.session.execute(update(m.recipients).where(m.recipients.c.id == f"customer:{customer_id}")
                                .values(**values))
            uow.commit()
        return store.recipient(uow.session, f"customer:{customer_id}")._asdict()

