"""Small helpers shared by the rules."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite


def aware(dt: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def insert_for(session, table):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


_BUILT: dict = {}


def built(session, name: str, build):
    """The statement `build(dialect_insert)` under `name`, built once per dialect and reused with
    parameters given at execution: building a statement with its values inside (`.values(**row)`)
    costs SQLAlchemy the construction and a cache key over every bound value on each call (about
    0.2-2 ms of CPU for the intake's statements on SQLite, bench/TUNING.md item 23)."""
    dialect = session.get_bind().dialect.name
    stmt = _BUILT.get((dialect, name))
    if stmt is None:
        stmt = _BUILT[(dialect, name)] = build(postgresql.insert if dialect == "postgresql" else sqlite.insert)
    return stmt


def upsert(session, table, key: dict, values: dict) -> None:
    stmt = insert_for(session, table).values(**key, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))


def is_postgres(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
