"""sales: the report read model, `funnel_rollup` and `forecast_rollup` (domain/rollup.py), filled
from the opportunities. From this release on every opportunity change updates them in its own
transaction, and the funnel and forecast reports read them.

Expand, with a fill: the tables are new, so the previous release keeps working; but it changes
opportunities without updating the rollups, so what its pods change during the rollout (or after a
rollback) is missing from them until the daily `report_rollups` job (sales/jobs.py) rebuilds them
from the opportunities; run that job once the rollout is over to repair at once. The fill takes no
lock on opportunities (rule 5): the writes it races with are repaired by the same job.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from crm_shared.migrations import set_lock_timeout

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN_STAGES = ("qualification", "needs_analysis", "proposal", "negotiation")


def _count():
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fill(pg: bool) -> list[str]:
    if pg:
        day = "(created_at AT TIME ZONE 'UTC')::date"
        month = "date_trunc('month', created_at AT TIME ZONE 'UTC')::date"
        minor = "(expected_amount * 100)::bigint"
        close = "coalesce(to_char(expected_close, 'YYYY-MM-DD'), '')"
    else:
        day, month = "date(created_at)", "strftime('%Y-%m-01', created_at)"
        minor = "CAST(round(expected_amount * 100) AS INTEGER)"
        close = "coalesce(expected_close, '')"
    stages = ", ".join(f"'{s}'" for s in OPEN_STAGES)
    out = []
    for grain, period in (("D", day), ("M", month)):
        out.append(
            "INSERT INTO funnel_rollup (grain, period, owner_id, team_id, stage, furthest_stage, currency, n, "
            f"amount_minor) SELECT '{grain}', {period}, owner_id, coalesce(team_id, ''), stage, furthest_stage, "
            f"currency, count(*), sum({minor}) FROM opportunities GROUP BY {period}, owner_id, coalesce(team_id, ''), "
            "stage, furthest_stage, currency")
    out.append(
        "INSERT INTO forecast_rollup (grain, owner_id, team_id, stage, currency, close_on, n, amount_minor) "
        f"SELECT 'O', owner_id, coalesce(team_id, ''), stage, currency, {close}, count(*), sum({minor}) "
        f"FROM opportunities WHERE stage IN ({stages}) "
        f"GROUP BY owner_id, coalesce(team_id, ''), stage, currency, {close}")
    out.append(
        "INSERT INTO forecast_rollup (grain, owner_id, team_id, stage, currency, close_on, n, amount_minor) "
        f"SELECT 'C', '', '', stage, currency, {close}, count(*), sum({minor}) FROM opportunities "
        f"WHERE stage IN ({stages}) GROUP BY stage, currency, {close}")
    return out


def upgrade():
    set_lock_timeout(op)
    op.create_table(
        "funnel_rollup",
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("period", sa.Date(), primary_key=True),
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(20), primary_key=True),
        sa.Column("furthest_stage", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("n", _count(), nullable=False),
        sa.Column("amount_minor", _count(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "period", "owner_id", "team_id", "stage", "furthest_stage", "currency",
                                name="pk_funnel_rollup"),
    )
    op.create_index("ix_funnel_rollup_owner_id_grain_period", "funnel_rollup", ["owner_id", "grain", "period"])
    op.create_table(
        "forecast_rollup",
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(20), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("close_on", sa.String(10), primary_key=True),
        sa.Column("n", _count(), nullable=False),
        sa.Column("amount_minor", _count(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "owner_id", "team_id", "stage", "currency", "close_on",
                                name="pk_forecast_rollup"),
    )
    op.create_index("ix_forecast_rollup_grain_team_id", "forecast_rollup", ["grain", "team_id"])
    for sql in _fill(op.get_bind().dialect.name == "postgresql"):
        op.execute(sql)


def downgrade():
    op.drop_table("forecast_rollup")
    op.drop_table("funnel_rollup")
