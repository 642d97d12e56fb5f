"""sales: `customers.email_domain` (expand). The customer list filters by it (every customer of one
organisation). Nullable, no default: the previous release inserts and updates customers without
it and keeps working. This release writes it on create and on every change of the email; rows
the previous release writes during the rollout are filled by 0004 and by the contract step.

Contract (a later release, after every pod runs this one), not written yet:
    0005  run the 0004 backfill again, then drop the fallback `email_domain IS NULL AND email_key
          LIKE '%@<domain>'` from the list query (sales/api/customers.py).

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
    op.add_column("customers", sa.Column("email_domain", sa.String(254), nullable=True))
    create_index_online(op, "ix_customers_email_domain", "customers", ["email_domain"])


def downgrade():
    op.drop_index("ix_customers_email_domain", table_name="customers")
    with op.batch_alter_table("customers") as t:
        t.drop_column("email_domain")
