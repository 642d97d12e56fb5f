"""The service-desk service's tables (its own database)."""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer, String,
                        Table, Text, UniqueConstraint)

from crm_shared.db import messaging_tables, new_metadata, rate_limit_table

metadata = new_metadata()
outbox, processed_events = messaging_tables(metadata)
rate_limits = rate_limit_table(metadata)  # public endpoints, per client address

Id = String(64)
PK = BigInteger().with_variant(Integer, "sqlite")
TS = DateTime(timezone=True)

# -- read model of sales' customers and contracts (built from events only) --------------------------
customers = Table(
    "customers", metadata,
    Column("customer_id", Id, primary_key=True),
    Column("name", String(300), nullable=True),
    Column("tier", String(30), nullable=True),
    Column("owner_id", Id, nullable=True),
    Column("team_id", Id, nullable=True),
    Column("language", String(20), nullable=True),
    Column("phone", String(50), nullable=True),
    Column("email", String(300), nullable=True),
    Column("company", String(300), nullable=True),
    Column("revision", Integer, nullable=True),
    Column("created_seen", Boolean, nullable=False),  # False while only an update has arrived
    Column("updated_at", TS, nullable=False),
)

customer_contracts = Table(
    "customer_contracts", metadata,
    Column("contract_id", Id, primary_key=True),
    Column("customer_id", Id, nullable=False, index=True),
    Column("status", String(20), nullable=False),  # active, expiring, terminated
    Column("amount", String(40), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("start_date", Date, nullable=True),
    Column("end_date", Date, nullable=True),
    Column("updated_at", TS, nullable=False),
)

# -- configuration: agents, queues, SLA policies, business calendar --------------------------------
agents = Table(
    "agents", metadata,
    Column("user_id", Id, primary_key=True),
    Column("name", String(200), nullable=True),
    Column("max_open", Integer, nullable=False),
    Column("open_count", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

agent_skills = Table(
    "agent_skills", metadata,
    Column("user_id", Id, ForeignKey("agents.user_id", ondelete="CASCADE"), primary_key=True),
    Column("queue", String(30), primary_key=True),
    Index("ix_agent_skills_queue", "queue"),
)

queues = Table(
    "queues", metadata,
    Column("name", String(30), primary_key=True),
    Column("supervisor_id", Id, nullable=True),
    Column("updated_at", TS, nullable=False),
)

sla_policies = Table(
    "sla_policies", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("priority", String(10), nullable=False),
    Column("tier", String(30), nullable=False),  # "*" applies to every tier without a policy of its own
    Column("first_response_minutes", Integer, nullable=False),
    Column("next_response_minutes", Integer, nullable=False),
    Column("resolution_minutes", Integer, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("priority", "tier", name="uq_sla_policies_priority_tier"),
)

calendars = Table(
    "calendars", metadata,
    Column("name", String(50), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# -- tickets -----------------------------------------------------------------------------------------
tickets = Table(
    "tickets", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("customer_id", Id, nullable=False),
    Column("type", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("queue", String(30), nullable=False),
    Column("status", String(10), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("description", Text, nullable=False),
    Column("channel", String(10), nullable=False),
    Column("contact", JSON, nullable=True),
    Column("tier", String(30), nullable=True),  # the customer's tier when the ticket was filed
    Column("rank", Integer, nullable=False),  # queue order: lower first (gold and urgent lead)
    Column("assignee_id", Id, nullable=True),
    Column("created_by", Id, nullable=True),
    Column("order_id", Id, nullable=True, unique=True),  # the order an onboarding ticket came from
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("assigned_at", TS, nullable=True),
    Column("first_response_at", TS, nullable=True),
    Column("pending_since", TS, nullable=True),
    Column("held_seconds", Float, nullable=False),  # total wall-clock time spent in pending
    Column("resolved_at", TS, nullable=True),
    Column("resolution_seconds", Float, nullable=True),  # resolved_at - created_at - held_seconds
    Column("closed_at", TS, nullable=True),
    Column("escalated_to", Id, nullable=True),
    Column("auto_reply", Text, nullable=True),
    Index("ix_tickets_waiting", "queue", "status", "rank", "created_at"),
    Index("ix_tickets_customer_id", "customer_id"),
    Index("ix_tickets_assignee_id", "assignee_id"),
    Index("ix_tickets_status_resolved_at", "status", "resolved_at"),
)

ticket_slas = Table(
    "ticket_slas", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("ticket_id", PK, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(20), nullable=False),  # first_response, next_response, resolution
    Column("cycle", Integer, nullable=False),  # next_response: one per customer message
    Column("minutes", Integer, nullable=False),  # business minutes allowed
    Column("started_at", TS, nullable=False),
    Column("warn_at", TS, nullable=True),
    Column("due_at", TS, nullable=True),
    Column("running", Boolean, nullable=False),  # False while the ticket is pending, or once met
    Column("remaining_minutes", Float, nullable=True),  # kept while paused
    Column("warn_remaining_minutes", Float, nullable=True),
    Column("next_check_at", TS, nullable=True),  # when the scan must look again (null: never)
    Column("met_at", TS, nullable=True),
    Column("warned_at", TS, nullable=True),
    Column("breached_at", TS, nullable=True),
    Column("escalated_at", TS, nullable=True),
    UniqueConstraint("ticket_id", "target", "cycle", name="uq_ticket_slas_ticket_id_target_cycle"),
    Index("ix_ticket_slas_next_check_at", "next_check_at"),
)

comments = Table(
    "comments", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("ticket_id", PK, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("author_id", Id, nullable=True),
    Column("body", Text, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("from_customer", Boolean, nullable=False),
    Column("automatic", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
)

ticket_history = Table(
    "ticket_history", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("ticket_id", PK, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", TS, nullable=False),
    Column("kind", String(30), nullable=False),
    Column("actor_id", Id, nullable=True),
    Column("data", JSON, nullable=True),
)

csat_requests = Table(
    "csat_requests", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the one-time token
    Column("ticket_id", PK, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("customer_id", Id, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("submitted_at", TS, nullable=True),
    Column("score", Integer, nullable=True),
    Column("comment", Text, nullable=True),
)
