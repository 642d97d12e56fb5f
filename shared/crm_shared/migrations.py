"""Alembic, shared: each service keeps its own `migrations/` folder; its env.py calls `run_env`."""
from __future__ import annotations

import os

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool

from . import db
from .service import ServiceDefinition


def alembic_config(definition: ServiceDefinition, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(definition.migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["crm_metadata"] = definition.metadata
    return cfg


def upgrade(definition: ServiceDefinition, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(definition, database_url), revision)


def downgrade(definition: ServiceDefinition, database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(definition, database_url), revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = db.make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=url.startswith("sqlite"),
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def create_messaging_tables(op) -> None:
    """Used by each service's first migration: the outbox and the inbox, exactly as in db.py."""
    md = db.new_metadata()
    db.messaging_tables(md)
    md.create_all(op.get_bind())


def drop_messaging_tables(op) -> None:
    md = db.new_metadata()
    db.messaging_tables(md)
    md.drop_all(op.get_bind())
