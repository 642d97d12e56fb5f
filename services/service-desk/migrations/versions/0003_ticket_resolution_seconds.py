"""service-desk: `tickets.resolution_seconds` (expand): how long a ticket took to resolve, pending
time excluded (resolved_at - created_at - held_seconds), stored when it is resolved and cleared
when it is reopened, shown on the ticket (and for reports: SUM/AVG without date arithmetic).
Nullable, no default: the previous release resolves tickets without it and keeps working. Rows
resolved by the previous release during the rollout are computed on read until the contract step.

Contract (a later release, after every pod runs this one), not written yet:
    0005  run the 0004 backfill again, drop the read fallback (service_desk/api/tickets.py,
          `represent`), and add CHECK (resolved_at IS NULL OR resolution_seconds IS NOT NULL),
          NOT VALID then VALIDATE (docs/MIGRATIONS.md, rules 3 and 5).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from crm_shared.migrations import set_lock_timeout

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    set_lock_timeout(op)
    op.add_column("tickets", sa.Column("resolution_seconds", sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table("tickets") as t:
        t.drop_column("resolution_seconds")
