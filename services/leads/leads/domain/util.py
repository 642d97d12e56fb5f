"""Small helpers shared by the rules."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite

from crm_shared.db import Statements, driver_execute  # noqa: F401 (the leads rules' import of it)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; everything stored is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def insert_for(session, table):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


# leads' statements built once per dialect, the values given at execution (crm_shared.db.Statements;
# about 0.2-2 ms of CPU a statement on SQLite's intake path, bench/TUNING.md item 23)
built = Statements().get


def upsert(session, table, key: dict, values: dict) -> None:
    stmt = insert_for(session, table).values(**key, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))


def is_postgres(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
