"""The notify service's tables (its own database).

- recipients: who can be reached and how (users via PUT /v1/recipients, customers from customer.* events)
- preferences: a user's own choices (channels per event type, quiet hours, digests, language)
- subscriptions / templates: custom ones; the shipped defaults live in code (domain/defaults.py)
- webhooks: generic signed webhooks and work-chat robots (WeCom, DingTalk, Feishu)
- deliveries: one row per (event id, recipient, channel), the unit of exactly-once and of the log
- delivery_attempts: the outcome of every try
- inbox_items: the in-app inbox
"""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Index, Integer, String, Table, Text, false, true,
                        UniqueConstraint)

from crm_shared.db import messaging_tables, new_metadata

metadata = new_metadata()
outbox, processed_events = messaging_tables(metadata)

_Id = BigInteger().with_variant(Integer, "sqlite")

recipients = Table(
    "recipients", metadata,
    Column("id", String(100), primary_key=True),          # a user id, or "customer:<customer_id>"
    Column("kind", String(10), nullable=False),           # user | customer
    Column("name", String(200), nullable=True),
    Column("email", String(320), nullable=True),
    Column("mobile", String(40), nullable=True),
    Column("language", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("roles", JSON, nullable=False),                # users: their roles (role subscriptions)
    Column("team_id", String(64), nullable=True),
    Column("owner_id", String(64), nullable=True),        # customers: the account owner
    Column("birthday", Date, nullable=True),
    Column("birthday_greetings", Boolean, nullable=False, server_default=true()),
    Column("holiday_greetings", Boolean, nullable=False, server_default=true()),
    Column("revision", Integer, nullable=True),           # customers: ignore stale customer.* events
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_recipients_team", recipients.c.team_id)

preferences = Table(
    "preferences", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("language", String(10), nullable=True),
    Column("quiet_start", String(5), nullable=True),      # "22:00" local time, with quiet_end
    Column("quiet_end", String(5), nullable=True),
    Column("channels", JSON, nullable=False),             # {event_type: [channel, ...]}
    Column("digest", JSON, nullable=False),               # {event_type: "hourly" | "daily"}
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_type", String(100), nullable=False),
    Column("recipient_kind", String(20), nullable=False),  # field | role | team_manager | customer | user
    Column("recipient_value", String(100), nullable=True),
    Column("channels", JSON, nullable=False),
    Column("template", String(100), nullable=False),
    Column("condition", JSON, nullable=True),
    Column("critical", Boolean, nullable=False, server_default=false()),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_subscriptions_event_type", subscriptions.c.event_type)

templates = Table(
    "templates", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_type", String(100), nullable=False),    # an event type or a schedule key (reminder.*, greeting.*)
    Column("channel", String(20), nullable=False),
    Column("language", String(10), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("sms_rule", String(10), nullable=False, server_default="split"),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("event_type", "channel", "language", name="uq_templates_key"),
)

webhooks = Table(
    "webhooks", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("owner_id", String(64), nullable=False),
    Column("kind", String(10), nullable=False),            # webhook | wecom | dingtalk | feishu
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=True),
    Column("event_types", JSON, nullable=False),
    Column("condition", JSON, nullable=True),             # e.g. pool leads of one team only
    Column("language", String(10), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_id", String(80), nullable=False),        # the event's id, or a derived id (reminders, digests)
    Column("event_type", String(100), nullable=False),
    Column("recipient", String(100), nullable=False),      # user id, "customer:<id>" or "webhook:<id>"
    Column("channel", String(20), nullable=False),         # email | sms | inbox | webhook | wecom | dingtalk | feishu
    Column("kind", String(20), nullable=False),            # message | reminder | greeting | digest | notice
    Column("critical", Boolean, nullable=False, server_default=false()),
    Column("status", String(20), nullable=False),          # pending | sending | sent | failed | cancelled | digest | digested | skipped
    Column("language", String(10), nullable=True),
    Column("subject", Text, nullable=True),
    Column("body", Text, nullable=True),
    Column("html", Text, nullable=True),
    Column("sms_rule", String(10), nullable=True),
    Column("payload", JSON, nullable=True),                # webhooks: the envelope; inbox: the ids it is about
    Column("reason_key", String(200), nullable=True),      # what cancels it (followup:<lead_id>, approval:<id>, ...)
    Column("digest_mode", String(10), nullable=True),      # hourly | daily | throttle, while status = digest
    Column("digest_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("trace_context", JSON, nullable=True),          # W3C context of the handling that planned it (tracing on)
    UniqueConstraint("event_id", "recipient", "channel", name="uq_deliveries_once"),
)
Index("ix_deliveries_due", deliveries.c.status, deliveries.c.due_at)
Index("ix_deliveries_reason", deliveries.c.reason_key)
Index("ix_deliveries_recipient", deliveries.c.recipient, deliveries.c.channel, deliveries.c.sent_at)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("delivery_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)
Index("ix_delivery_attempts_delivery", delivery_attempts.c.delivery_id)

inbox_items = Table(
    "inbox_items", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", String(100), nullable=False),
    Column("delivery_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False, unique=True),
    Column("event_id", String(80), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("topic", String(40), nullable=True),            # event_type's first word; NULL: written by an older release
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("refs", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=True),
)
Index("ix_inbox_items_user", inbox_items.c.user_id, inbox_items.c.id)
Index("ix_inbox_items_user_topic", inbox_items.c.user_id, inbox_items.c.topic, inbox_items.c.id)
