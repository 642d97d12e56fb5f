"""customer_tickets.last_event_at: when the newest ticket event applied happened, so an older
event arriving late (ticket.created after ticket.resolved) cannot roll the status back.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customer_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('customer_tickets', schema=None) as batch_op:
        batch_op.drop_column('last_event_at')
