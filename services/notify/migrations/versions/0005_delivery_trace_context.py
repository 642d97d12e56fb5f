"""notify: `deliveries.trace_context` (expand): the W3C trace context of the event handling that
planned a delivery, so the later delivery (in-app inbox, e-mail, SMS, webhook) continues the
event's trace (crm_shared.tracing). Nullable, no default, no backfill: deliveries planned before,
or by the previous release, or with tracing off, are simply not traced. Nothing to contract.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from crm_shared.migrations import set_lock_timeout

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    set_lock_timeout(op)
    op.add_column("deliveries", sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("deliveries") as t:
        t.drop_column("trace_context")
