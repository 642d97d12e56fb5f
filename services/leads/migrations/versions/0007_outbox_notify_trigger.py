"""The outbox wakes the relay by itself: a statement-level trigger on `outbox` sends the
pg_notify the unit of work sent once per transaction (one round trip fewer per unit of work).
PostgreSQL only; the previous release's own pg_notify is folded with the trigger's.

Revision ID: 0007
"""
from alembic import op

from crm_shared.migrations import create_outbox_notify_trigger, drop_outbox_notify_trigger

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    create_outbox_notify_trigger(op, "leads")


def downgrade():
    drop_outbox_notify_trigger(op)
