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


# -- helpers for zero-downtime migrations (docs/MIGRATIONS.md) --------------------------------------

def set_lock_timeout(op, timeout: str = "5s") -> None:
    """Fail fast rather than queue behind a long transaction while blocking every query behind us
    (PostgreSQL; the migrations Job retries)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"SET LOCAL lock_timeout = '{timeout}'")


def create_index_online(op, name: str, table: str, columns: list[str]) -> None:
    """CREATE INDEX CONCURRENTLY on PostgreSQL (no write lock while it builds), plain elsewhere."""
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index(name, table, columns)


def backfill(op, table: str, assignments: str, where: str, key: str = "id", batch: int = 1000) -> int:
    """`UPDATE table SET assignments WHERE where`, in batches of `batch` rows, each batch its own
    transaction on PostgreSQL (no long lock, no huge transaction); returns the rows updated.
    `where` must become false for an updated row, or the loop would not end."""
    from sqlalchemy import text
    bind = op.get_bind()
    total = 0
    if bind.dialect.name == "postgresql":
        sql = text(f"UPDATE {table} SET {assignments} WHERE {key} IN "
                   f"(SELECT {key} FROM {table} WHERE {where} LIMIT {int(batch)} FOR UPDATE SKIP LOCKED)")
        with op.get_context().autocommit_block():
            while True:
                n = bind.execute(sql).rowcount
                total += n
                if n == 0:
                    return total
    sql = text(f"UPDATE {table} SET {assignments} WHERE {key} IN "
               f"(SELECT {key} FROM {table} WHERE {where} LIMIT {int(batch)})")
    while True:
        n = bind.execute(sql).rowcount
        total += n
        if n == 0:
            return total


# -- the outbox's NOTIFY ----------------------------------------------------------------------------

OUTBOX_NOTIFY_FUNCTION = "crm_outbox_notify"
OUTBOX_NOTIFY_TRIGGER = "outbox_notify"  # crm_shared.uow looks it up by this name


def outbox_channel(service: str) -> str:
    """The channel the service's relay LISTENs on (`Runtime.notify_channel`)."""
    return "crm_outbox_" + service.replace("-", "_")


def create_outbox_notify_trigger(op, service: str) -> None:
    """PostgreSQL: after every INSERT statement on `outbox`, `pg_notify(<the service's channel>, '')`,
    delivered when (and only if) the transaction commits, and folded with any other identical
    notification of that transaction (the previous release still sends its own). Replaces the
    `SELECT pg_notify(…)` the unit of work sent once per transaction. No-op elsewhere."""
    if op.get_bind().dialect.name != "postgresql":
        return
    channel = outbox_channel(service)
    if not channel.replace("_", "").isalnum():
        raise ValueError(f"unexpected channel name {channel!r}")
    set_lock_timeout(op)  # CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock on outbox, briefly
    op.execute(f"""CREATE OR REPLACE FUNCTION {OUTBOX_NOTIFY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$""")
    op.execute(f"DROP TRIGGER IF EXISTS {OUTBOX_NOTIFY_TRIGGER} ON outbox")
    op.execute(f"CREATE TRIGGER {OUTBOX_NOTIFY_TRIGGER} AFTER INSERT ON outbox FOR EACH STATEMENT "
               f"EXECUTE FUNCTION {OUTBOX_NOTIFY_FUNCTION}('{channel}')")


def drop_outbox_notify_trigger(op) -> None:
    """The downgrade of `create_outbox_notify_trigger` (the code before it sends its own pg_notify)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    set_lock_timeout(op)
    op.execute(f"DROP TRIGGER IF EXISTS {OUTBOX_NOTIFY_TRIGGER} ON outbox")
    op.execute(f"DROP FUNCTION IF EXISTS {OUTBOX_NOTIFY_FUNCTION}()")
