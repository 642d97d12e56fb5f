"""leads: `email_domain` (expand). The lead list filters by it (account-based prospecting: every
lead from acme.com). Nullable, no default: the previous release inserts leads without it and keeps
working (it never names the column). This release writes it at intake; rows written by the
previous release during the rollout are filled by 0004 and, once no old pod is left, by the
contract step.

Contract (a later release, after every pod runs this one), not written yet:
    0005  run the 0004 backfill again (rows the previous release inserted during the rollout),
          then drop the fallback `email_domain IS NULL AND email LIKE '%@<domain>'` from the list
          query (leads/api/leads.py); optionally CHECK (email IS NULL OR email_domain IS NOT NULL),
          added NOT VALID and then validated (docs/MIGRATIONS.md, rule 3).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from crm_shared.migrations import create_index_online, set_lock_timeout

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    set_lock_timeout(op)
    op.add_column("leads", sa.Column("email_domain", sa.String(255), nullable=True))
    create_index_online(op, "ix_leads_email_domain", "leads", ["email_domain"])


def downgrade():
    op.drop_index("ix_leads_email_domain", table_name="leads")
    with op.batch_alter_table("leads") as t:
        t.drop_column("email_domain")
