"""The sales service's tables (its own database). Money is Numeric, never Float."""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, Numeric, String,
                        Table, Text, UniqueConstraint)

from crm_shared.db import messaging_tables, new_metadata

metadata = new_metadata()
outbox, processed_events = messaging_tables(metadata)

MONEY = Numeric(18, 2)
PCT = Numeric(7, 4)
QTY = Numeric(18, 4)
RATE = Numeric(20, 10)
TS = DateTime(timezone=True)
USER = String(64)


def _id():
    return Column("id", Integer, primary_key=True, autoincrement=True)


customers = Table(
    "customers", metadata, _id(),
    Column("name", String(200), nullable=False),
    Column("company", String(200)),
    Column("phone", String(50)),
    Column("email", String(254)),
    Column("phone_key", String(50), index=True),
    Column("email_key", String(254), index=True),
    Column("email_domain", String(254), index=True),  # after the last @ of email_key; NULL: an older release wrote it
    Column("company_key", String(420), index=True),
    Column("owner_id", USER, index=True),
    Column("team_id", USER, index=True),
    Column("lead_id", String(64), unique=True),
    Column("campaign_id", String(64)),
    Column("source", String(50), nullable=False),
    Column("province", String(100)),
    Column("city", String(100)),
    Column("industry", String(100)),
    Column("birthday", Date),
    Column("language", String(20)),
    Column("tier", String(20), nullable=False),
    Column("churn_risk", Boolean, nullable=False),
    Column("churn_reason", String(200)),
    Column("revision", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

contacts = Table(
    "contacts", metadata, _id(),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200)),
    Column("phone", String(50)),
    Column("email", String(254)),
    Column("title", String(100)),
)

opportunities = Table(
    "opportunities", metadata, _id(),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("lead_id", String(64), unique=True),
    Column("name", String(200), nullable=False),
    Column("expected_amount", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stage", String(20), nullable=False, index=True),
    Column("furthest_stage", Integer, nullable=False),
    Column("owner_id", USER, nullable=False, index=True),
    Column("team_id", USER),
    Column("lost_reason", String(500)),
    Column("expected_close", Date),
    Column("created_at", TS, nullable=False, index=True),
    Column("updated_at", TS, nullable=False),
)

products = Table(
    "products", metadata, _id(),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("list_price", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("active", Boolean, nullable=False),
)

quotes = Table(
    "quotes", metadata, _id(),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id"), nullable=False, index=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("owner_id", USER, nullable=False, index=True),
    Column("team_id", USER),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("previous_id", Integer),
    Column("subtotal", MONEY, nullable=False),
    Column("discount_amount", MONEY, nullable=False),
    Column("total", MONEY, nullable=False),
    Column("max_discount_pct", PCT, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

quote_lines = Table(
    "quote_lines", metadata, _id(),
    Column("quote_id", Integer, ForeignKey("quotes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("quantity", QTY, nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("discount_pct", PCT, nullable=False),
    Column("gross", MONEY, nullable=False),
    Column("discount", MONEY, nullable=False),
    Column("net", MONEY, nullable=False),
)

approval_policies = Table(
    "approval_policies", metadata, _id(),
    Column("subject_type", String(20), nullable=False),
    Column("threshold", Numeric(18, 4), nullable=False),
    Column("steps", JSON, nullable=False),
    Column("remind_after_hours", Integer, nullable=False),
    Column("escalate_after_hours", Integer, nullable=False),
)

approvals = Table(
    "approvals", metadata, _id(),
    Column("subject_type", String(20), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("requester_id", USER, nullable=False),
    Column("requester_team", USER),
    Column("status", String(20), nullable=False, index=True),
    Column("current_step", Integer, nullable=False),
    Column("amount", MONEY),
    Column("currency", String(3)),
    Column("max_discount_pct", PCT),
    Column("remind_after_hours", Integer, nullable=False),
    Column("escalate_after_hours", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("decided_at", TS),
    Index("ix_approvals_subject", "subject_type", "subject_id"),
)

approval_steps = Table(
    "approval_steps", metadata, _id(),
    Column("approval_id", Integer, ForeignKey("approvals.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("role", String(30)),
    Column("users", JSON, nullable=False),
    Column("mode", String(10), nullable=False),
    Column("team", USER),
    Column("status", String(20), nullable=False),
    Column("started_at", TS),
    Column("decided_at", TS),
    Column("reminded_at", TS),
    Column("escalations", Integer, nullable=False),
    UniqueConstraint("approval_id", "seq", name="uq_approval_steps_approval_seq"),
)

approval_decisions = Table(
    "approval_decisions", metadata, _id(),
    Column("approval_id", Integer, ForeignKey("approvals.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("step_id", Integer, ForeignKey("approval_steps.id", ondelete="CASCADE"), nullable=False),
    Column("actor_id", USER, nullable=False),
    Column("action", String(20), nullable=False),  # approve, reject, return, withdraw, remind, escalate, assign
    Column("comment", Text),
    Column("at", TS, nullable=False),
    Index("ix_approval_decisions_step_actor", "step_id", "actor_id"),
)

contracts = Table(
    "contracts", metadata, _id(),
    Column("quote_id", Integer, ForeignKey("quotes.id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("opportunity_id", Integer),
    Column("owner_id", USER, nullable=False, index=True),
    Column("team_id", USER),
    Column("lead_id", String(64)),
    Column("campaign_id", String(64)),
    Column("amount", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("signed_on", Date),
    Column("predecessor_id", Integer, unique=True),
    Column("successor_id", Integer),
    Column("renewal_window_days", Integer, nullable=False),
    Column("expiring_notified", Boolean, nullable=False),
    Column("churn_checked", Boolean, nullable=False),
    Column("reason", String(500)),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

installments = Table(
    "installments", metadata, _id(),
    Column("contract_id", Integer, ForeignKey("contracts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("paid", MONEY, nullable=False),
    Column("overdue_level", Integer, nullable=False),
)

payments = Table(
    "payments", metadata, _id(),
    Column("contract_id", Integer, ForeignKey("contracts.id"), nullable=False, index=True),
    Column("amount", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("reference", String(100), nullable=False, unique=True),
    Column("recorded_by", USER, nullable=False),
    Column("created_at", TS, nullable=False),
)

allocations = Table(
    "payment_allocations", metadata, _id(),
    Column("payment_id", Integer, ForeignKey("payments.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("installment_id", Integer, ForeignKey("installments.id"), nullable=False),
    Column("amount", MONEY, nullable=False),
)

orders = Table(
    "orders", metadata, _id(),
    Column("contract_id", Integer, ForeignKey("contracts.id"), nullable=False, unique=True),
    Column("customer_id", Integer, nullable=False),
    Column("owner_id", USER, nullable=False, index=True),
    Column("team_id", USER),
    Column("status", String(20), nullable=False, index=True),
    Column("products", JSON, nullable=False),
    Column("note", Text),
    Column("handled_by", USER),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

customer_tickets = Table(  # a read model of service-desk tickets, for the customer's health
    "customer_tickets", metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", Integer, nullable=False, index=True),
    Column("type", String(30), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("opened_at", TS),
    Column("resolved_at", TS),
    Column("last_event_at", TS),  # occurred_at of the newest event applied (older ones change no status)
)

exchange_rates = Table(
    "exchange_rates", metadata,
    Column("currency", String(3), primary_key=True),
    Column("rate", RATE, nullable=False),  # 1 unit of currency = rate units of the base currency
    Column("updated_at", TS, nullable=False),
)

# The report read model (domain/rollup.py): opportunities counted and summed per key, updated in the
# same transaction as every opportunity change, so the funnel and the forecast read a number of rows
# bounded by reps × stages × currencies × periods rather than by opportunities. Amounts in hundredths
# (MONEY has two places), so sums are exact integers on SQLite too. team_id '' stands for none.
COUNT = BigInteger().with_variant(Integer, "sqlite")

funnel_rollup = Table(
    "funnel_rollup", metadata,
    Column("grain", String(1), primary_key=True),  # D: period is the UTC day of created_at; M: its month
    Column("period", Date, primary_key=True),
    Column("owner_id", USER, primary_key=True),
    Column("team_id", USER, primary_key=True),
    Column("stage", String(20), primary_key=True),
    Column("furthest_stage", Integer, primary_key=True, autoincrement=False),
    Column("currency", String(3), primary_key=True),
    Column("n", COUNT, nullable=False),
    Column("amount_minor", COUNT, nullable=False),
    Index("ix_funnel_rollup_owner_id_grain_period", "owner_id", "grain", "period"),
)

forecast_rollup = Table(  # open opportunities only
    "forecast_rollup", metadata,
    Column("grain", String(1), primary_key=True),  # O: per owner and team; C: the whole company (owner, team '')
    Column("owner_id", USER, primary_key=True),
    Column("team_id", USER, primary_key=True),
    Column("stage", String(20), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("close_on", String(10), primary_key=True),  # expected_close as YYYY-MM-DD; '' unscheduled
    Column("n", COUNT, nullable=False),
    Column("amount_minor", COUNT, nullable=False),
    Index("ix_forecast_rollup_grain_team_id", "grain", "team_id"),
)
