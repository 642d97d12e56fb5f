"""The leads service's tables (its own database).

Integrity that must hold under concurrency is held by the database:
- `lead_keys` (kind, value) is the primary key: one row per normalised phone, email and
  company+city of every lead and of every customer learnt from sales, so two simultaneous intakes
  of one phone number cannot both commit;
- a claim is a conditional UPDATE of `leads` (… WHERE status = 'pooled');
- round robin takes its turn from a per-team PostgreSQL sequence (`leads_team_<id>_turn`, no lock);
  the capacity cap is a conditional upsert of the owner's `owner_loads` counter (… WHERE
  open_leads < cap), taken late in the intake; the weighted and least-loaded strategies lock the
  team row (SELECT … FOR UPDATE) and keep per-member counts in `team_members`.
"""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, Numeric,
                        PrimaryKeyConstraint, String, Table, Text, false, true)

from crm_shared.db import messaging_tables, new_metadata, rate_limit_table

metadata = new_metadata()
outbox, processed_events = messaging_tables(metadata)
rate_limits = rate_limit_table(metadata)  # public endpoints, per client address

BigId = BigInteger().with_variant(Integer, "sqlite")
TS = DateTime(timezone=True)
MONEY = Numeric(18, 2)

teams = Table(
    "teams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("code", String(64), nullable=True, unique=True),  # the identity provider's `team` claim
    Column("strategy", String(20), nullable=False),
    Column("rr_cursor", Integer, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
)

team_members = Table(
    "team_members", metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("max_open_leads", Integer, nullable=True),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("position", Integer, nullable=False, server_default="0"),
    Column("assigned_count", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("team_id", "user_id"),
)
Index("ix_team_members_user_id", team_members.c.user_id)

owner_loads = Table(  # open leads (new, contacted, qualified) per owner: the capacity cap's counter
    "owner_loads", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("open_leads", Integer, nullable=False, server_default="0"),
)

routing_rules = Table(
    "routing_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("priority", Integer, nullable=False),
    Column("conditions", JSON, nullable=False),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", TS, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("budget", MONEY, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("starts_on", Date, nullable=True),
    Column("ends_on", Date, nullable=True),
    Column("created_at", TS, nullable=False),
)

campaign_costs = Table(
    "campaign_costs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("amount", MONEY, nullable=False),
    Column("incurred_on", Date, nullable=False),
    Column("note", String(500), nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
)
Index("ix_campaign_costs_campaign_id", campaign_costs.c.campaign_id)

leads = Table(
    "leads", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=True),
    Column("company", String(300), nullable=True),
    Column("phone", String(32), nullable=True),   # E.164
    Column("email", String(320), nullable=True),  # lower-cased
    Column("email_domain", String(255), nullable=True),  # after the last @; NULL for rows of older releases
    Column("province", String(50), nullable=True),
    Column("city", String(50), nullable=True),
    Column("industry", String(100), nullable=True),
    Column("source", String(20), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=True),
    Column("referrer_customer_id", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Column("tags", String(200), nullable=True),  # comma separated, e.g. "win_back"
    Column("status", String(20), nullable=False),
    Column("stage", String(20), nullable=False),  # the status to return to when a pooled lead is taken
    Column("disqualify_reason", String(500), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("owner_name", String(200), nullable=True),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
    Column("score", Integer, nullable=False),
    Column("tier", String(1), nullable=False),
    Column("locked", Boolean, nullable=False, server_default=false()),
    Column("created_by", String(64), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("assigned_at", TS, nullable=True),
    Column("last_follow_up_at", TS, nullable=True),
    Column("next_follow_up_at", TS, nullable=True),
    Column("pooled_at", TS, nullable=True),
    Column("warned_for", TS, nullable=True),  # the recycle time the owner was last warned of
    Column("cooldown_user_id", String(64), nullable=True),
    Column("cooldown_until", TS, nullable=True),
    Column("duplicate_hits", Integer, nullable=False, server_default="0"),
    Column("last_duplicate_at", TS, nullable=True),
    Column("customer_id", String(64), nullable=True),
    Column("converted_at", TS, nullable=True),
    Column("won_at", TS, nullable=True),
)
Index("ix_leads_owner_status", leads.c.owner_id, leads.c.status)
Index("ix_leads_status_pooled_at", leads.c.status, leads.c.pooled_at)
Index("ix_leads_team_id", leads.c.team_id)
Index("ix_leads_campaign_id", leads.c.campaign_id)
Index("ix_leads_email_domain", leads.c.email_domain)

lead_keys = Table(
    "lead_keys", metadata,
    Column("kind", String(10), nullable=False),   # phone | email | company
    Column("value", String(400), nullable=False),
    Column("lead_id", BigId, ForeignKey("leads.id", ondelete="CASCADE"), nullable=True),
    Column("customer_id", String(64), nullable=True),
    PrimaryKeyConstraint("kind", "value"),
)
Index("ix_lead_keys_lead_id", lead_keys.c.lead_id)

customers = Table(  # read model of sales' customers, for dedupe and lookup
    "customers", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("owner_id", String(64), nullable=True),
    Column("lead_id", BigId, nullable=True),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    Column("company", String(300), nullable=True),
    Column("city", String(50), nullable=True),
    Column("revision", Integer, nullable=True),
    Column("updated_at", TS, nullable=False),
)

users = Table(  # display names learnt from team membership and tokens
    "users", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

lead_history = Table(
    "lead_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("lead_id", BigId, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("at", TS, nullable=False),
    Column("kind", String(30), nullable=False),
    Column("actor_id", String(64), nullable=True),
    Column("actor_name", String(200), nullable=True),
    Column("from_owner_id", String(64), nullable=True),
    Column("to_owner_id", String(64), nullable=True),
    Column("reason", String(500), nullable=True),
)
Index("ix_lead_history_lead_id", lead_history.c.lead_id, lead_history.c.id)
Index("ix_lead_history_actor_kind_at", lead_history.c.actor_id, lead_history.c.kind, lead_history.c.at)

follow_ups = Table(
    "follow_ups", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("lead_id", BigId, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("author_id", String(64), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("note", Text, nullable=True),
    Column("outcome", String(200), nullable=True),
    Column("next_follow_up_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
)
Index("ix_follow_ups_lead_id", follow_ups.c.lead_id)

pool_policies = Table(
    "pool_policies", metadata,
    Column("scope", String(40), primary_key=True),  # "default" or "team:<id>"
    Column("settings", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
)

config = Table(  # small documents of configuration, e.g. the scoring weights
    "config", metadata,
    Column("key", String(40), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
)

sources = Table(  # per-source keys for public intake
    "sources", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("rate_per_minute", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", TS, nullable=False),
)

rate_windows = Table(
    "rate_windows", metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("window_start", TS, nullable=False),
    Column("hits", Integer, nullable=False),
    PrimaryKeyConstraint("source_id", "window_start"),
)

contracts = Table(  # contract.signed events that carry a lead or campaign: revenue attribution
    "contracts", metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("lead_id", BigId, nullable=True),
    Column("campaign_id", Integer, nullable=True),
    Column("source", String(20), nullable=True),
    Column("amount", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("signed_on", Date, nullable=True),
    Column("recorded_at", TS, nullable=False),
)
Index("ix_contracts_campaign_id", contracts.c.campaign_id)

access_log = Table(
    "access_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(200), nullable=True),
    Column("lead_id", BigId, nullable=False),
    Column("fields", String(100), nullable=False),
    Column("path", String(300), nullable=True),
)
Index("ix_access_log_lead_id", access_log.c.lead_id)
