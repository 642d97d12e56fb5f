"""The leads service's tables: leads and their dedupe keys, history and follow-ups; teams,
members and routing rules; pool policies; campaigns, costs and signed contracts; source keys and
rate windows; the customer read model; configuration; the access log.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('user_name', sa.String(length=200), nullable=True),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fields', sa.String(length=100), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    op.create_index('ix_access_log_lead_id', 'access_log', ['lead_id'], unique=False)
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('budget', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_table('config',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_config'))
    )
    op.create_table('contracts',
    sa.Column('contract_id', sa.String(length=64), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=True),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('contract_id', name=op.f('pk_contracts'))
    )
    op.create_index('ix_contracts_campaign_id', 'contracts', ['campaign_id'], unique=False)
    op.create_table('customers',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('company', sa.String(length=300), nullable=True),
    sa.Column('city', sa.String(length=50), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customers'))
    )
    op.create_table('pool_policies',
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_pool_policies'))
    )
    op.create_table('teams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('strategy', sa.String(length=20), nullable=False),
    sa.Column('rr_cursor', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('code', name=op.f('uq_teams_code')),
    sa.UniqueConstraint('name', name=op.f('uq_teams_name'))
    )
    op.create_table('users',
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )
    op.create_table('campaign_costs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('incurred_on', sa.Date(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_costs_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_costs'))
    )
    op.create_index('ix_campaign_costs_campaign_id', 'campaign_costs', ['campaign_id'], unique=False)
    op.create_table('leads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('company', sa.String(length=300), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('province', sa.String(length=50), nullable=True),
    sa.Column('city', sa.String(length=50), nullable=True),
    sa.Column('industry', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('referrer_customer_id', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('tags', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('disqualify_reason', sa.String(length=500), nullable=True),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('owner_name', sa.String(length=200), nullable=True),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=1), nullable=False),
    sa.Column('locked', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_follow_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_follow_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pooled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cooldown_user_id', sa.String(length=64), nullable=True),
    sa.Column('cooldown_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duplicate_hits', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_duplicate_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('won_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_leads_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_leads_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads'))
    )
    op.create_index('ix_leads_campaign_id', 'leads', ['campaign_id'], unique=False)
    op.create_index('ix_leads_owner_status', 'leads', ['owner_id', 'status'], unique=False)
    op.create_index('ix_leads_status_pooled_at', 'leads', ['status', 'pooled_at'], unique=False)
    op.create_index('ix_leads_team_id', 'leads', ['team_id'], unique=False)
    op.create_table('routing_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_routing_rules_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_rules'))
    )
    op.create_table('sources',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('rate_per_minute', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_sources_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_sources_key_hash'))
    )
    op.create_table('team_members',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('weight', sa.Integer(), server_default='1', nullable=False),
    sa.Column('max_open_leads', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('position', sa.Integer(), server_default='0', nullable=False),
    sa.Column('assigned_count', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_team_members'))
    )
    op.create_index('ix_team_members_user_id', 'team_members', ['user_id'], unique=False)
    op.create_table('follow_ups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('author_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.Column('next_follow_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_follow_ups_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups'))
    )
    op.create_index('ix_follow_ups_lead_id', 'follow_ups', ['lead_id'], unique=False)
    op.create_table('lead_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=True),
    sa.Column('from_owner_id', sa.String(length=64), nullable=True),
    sa.Column('to_owner_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_history_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_history'))
    )
    op.create_index('ix_lead_history_actor_kind_at', 'lead_history', ['actor_id', 'kind', 'at'], unique=False)
    op.create_index('ix_lead_history_lead_id', 'lead_history', ['lead_id', 'id'], unique=False)
    op.create_table('lead_keys',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('value', sa.String(length=400), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_keys_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kind', 'value', name=op.f('pk_lead_keys'))
    )
    op.create_index('ix_lead_keys_lead_id', 'lead_keys', ['lead_id'], unique=False)
    op.create_table('rate_windows',
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_rate_windows_source_id_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_id', 'window_start', name=op.f('pk_rate_windows'))
    )


def downgrade():
    op.drop_table('rate_windows')
    op.drop_index('ix_lead_keys_lead_id', table_name='lead_keys')
    op.drop_table('lead_keys')
    op.drop_index('ix_lead_history_lead_id', table_name='lead_history')
    op.drop_index('ix_lead_history_actor_kind_at', table_name='lead_history')
    op.drop_table('lead_history')
    op.drop_index('ix_follow_ups_lead_id', table_name='follow_ups')
    op.drop_table('follow_ups')
    op.drop_index('ix_team_members_user_id', table_name='team_members')
    op.drop_table('team_members')
    op.drop_table('sources')
    op.drop_table('routing_rules')
    op.drop_index('ix_leads_team_id', table_name='leads')
    op.drop_index('ix_leads_status_pooled_at', table_name='leads')
    op.drop_index('ix_leads_owner_status', table_name='leads')
    op.drop_index('ix_leads_campaign_id', table_name='leads')
    op.drop_table('leads')
    op.drop_index('ix_campaign_costs_campaign_id', table_name='campaign_costs')
    op.drop_table('campaign_costs')
    op.drop_table('users')
    op.drop_table('teams')
    op.drop_table('pool_policies')
    op.drop_table('customers')
    op.drop_index('ix_contracts_campaign_id', table_name='contracts')
    op.drop_table('contracts')
    op.drop_table('config')
    op.drop_table('campaigns')
    op.drop_index('ix_access_log_lead_id', table_name='access_log')
    op.drop_table('access_log')
