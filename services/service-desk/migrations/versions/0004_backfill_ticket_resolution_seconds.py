"""service-desk: compute `resolution_seconds` of tickets already resolved (migrate), in batches of
1,000, each its own transaction on PostgreSQL.

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
        elapsed = "EXTRACT(EPOCH FROM resolved_at - created_at)"
    else:
        elapsed = "(julianday(resolved_at) - julianday(created_at)) * 86400.0"
    backfill(op, "tickets", f"resolution_seconds = {elapsed} - held_seconds",
             "resolution_seconds IS NULL AND resolved_at IS NOT NULL")


def downgrade():
    pass  # the data stays; 0003's downgrade drops the column
