"""notify: `inbox_items.topic` (expand): what an item is about, the event type's first word
(`lead`, `ticket`, `approval`, `payment`, `reminder` ...), for the inbox's tabs
(`GET /v1/inbox?topic=lead`, with an index per user and topic). Nullable, no default: the previous
release writes inbox items without it and keeps working. Items it writes during the rollout are
matched by the list's fallback (`topic IS NULL AND event_type LIKE '<topic>.%'`) until the
contract step.

Contract (a later release, after every pod runs this one), not written yet:
    0006  run the 0004 backfill again, drop the fallback from the inbox query (notify/api/inbox.py),
          then SET NOT NULL (CHECK ... NOT VALID, VALIDATE, SET NOT NULL: docs/MIGRATIONS.md rule 3).

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
    op.add_column("inbox_items", sa.Column("topic", sa.String(40), nullable=True))
    create_index_online(op, "ix_inbox_items_user_topic", "inbox_items", ["user_id", "topic", "id"])


def downgrade():
    op.drop_index("ix_inbox_items_user_topic", table_name="inbox_items")
    with op.batch_alter_table("inbox_items") as t:
        t.drop_column("topic")
