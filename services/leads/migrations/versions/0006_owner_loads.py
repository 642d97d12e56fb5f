"""Routing without the team lock: open leads per owner (`owner_loads`, backfilled from `leads`), and
on PostgreSQL one round-robin turn sequence per team (`leads_team_<id>_turn`, starting at the
team's `rr_cursor`).

Revision ID: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "owner_loads",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("open_leads", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_owner_loads")),
    )
    op.execute("INSERT INTO owner_loads (user_id, open_leads) SELECT owner_id, count(*) FROM leads "
               "WHERE owner_id IS NOT NULL AND status IN ('new', 'contacted', 'qualified') GROUP BY owner_id")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for team_id, cursor in bind.execute(sa.text("SELECT id, rr_cursor FROM teams")).all():
            op.execute(f"CREATE SEQUENCE IF NOT EXISTS leads_team_{int(team_id)}_turn MINVALUE 0 START {int(cursor)}")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for (team_id,) in bind.execute(sa.text("SELECT id FROM teams")).all():
            op.execute(f"DROP SEQUENCE IF EXISTS leads_team_{int(team_id)}_turn")
    op.drop_table("owner_loads")
