"""notify: fill `inbox_items.topic` of existing items from their event type (migrate), in batches
of 1,000, each its own transaction on PostgreSQL.

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
        topic = "left(split_part(event_type, '.', 1), 40)"
    else:
        topic = ("substr(CASE WHEN instr(event_type, '.') > 0 THEN substr(event_type, 1, instr(event_type, '.') - 1)"
                 " ELSE event_type END, 1, 40)")
    backfill(op, "inbox_items", f"topic = {topic}", "topic IS NULL")


def downgrade():
    pass  # the data stays; 0003's downgrade drops the column
