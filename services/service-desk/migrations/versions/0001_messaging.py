"""The transactional outbox and the idempotent inbox.

Revision ID: 0001
"""
from alembic import op

from crm_shared.migrations import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_messaging_tables(op)


def downgrade():
    drop_messaging_tables(op)
