"""sales: `customer_tickets.last_event_at` (expand, and nothing more is needed): when the newest
ticket event applied happened, so an older event arriving late (a `ticket.created` after the
`ticket.resolved`) cannot roll the status back. Nullable: the previous release writes rows without
it, and this release treats a row without it as older than any event (the next event applies, as
before), so no backfill and no contract step.

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
    op.add_column("customer_tickets", sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("customer_tickets") as t:
        t.drop_column("last_event_at")
