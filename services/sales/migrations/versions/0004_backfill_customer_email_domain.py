"""sales: fill `customers.email_domain` from `email_key` (migrate), in batches of 1,000, each its
own transaction on PostgreSQL.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

from crm_shared.migrations import backfill

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        domain = "substring(email_key from '@([^@]*)$')"
    else:
        domain = "substr(email_key, instr(email_key, '@') + 1)"
    backfill(op, "customers", f"email_domain = {domain}", "email_domain IS NULL AND email_key LIKE '%@%'")


def downgrade():
    pass  # the data stays; 0003's downgrade drops the column
