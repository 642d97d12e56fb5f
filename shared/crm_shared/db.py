"""Engines, sessions and the two tables every service has: the outbox and the inbox."""
from __future__ import annotations

import os
import select
import sqlite3

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, String, exc, false,
                        Table, Text, create_engine, event, text)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker

from . import sqlitelock

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Statements:
    """Statements built once per dialect and run with their values as parameters: building a
    statement with its values inside (`.values(**row)`) costs SQLAlchemy the construction and a cache
    key over every bound value on each call, often more CPU than running it. One instance per module
    (names are that module's own): `stmt = STATEMENTS.get(session, "name", lambda insert: ...)`,
    where `insert` is the dialect's INSERT (PostgreSQL's or SQLite's, for ON CONFLICT)."""

    def __init__(self):
        self._built: dict = {}

    def get(self, session, name: str, build):
        dialect = session.get_bind().dialect.name
        stmt = self._built.get((dialect, name))
        if stmt is None:
            from sqlalchemy.dialects import postgresql, sqlite
            stmt = self._built[(dialect, name)] = build(postgresql.insert if dialect == "postgresql" else sqlite.insert)
        return stmt


_DRIVER_SQL: dict = {}  # (dialect name, id(statement)) -> (the driver's SQL or None, the statement)
_DRIVER_SQL_MAX = 512  # statements built once number in the tens; a caller building one per call only recompiles


def driver_execute(session, stmt, params: dict):
    """Run `stmt` (a statement built once: a module's constant or a `Statements` entry) with
    `params` as the driver's own SQL, compiled once per dialect: `exec_driver_sql` skips what
    `Session.execute` does on every call for a compiled statement (the cache key's hash and
    comparison, which grow with the statement, the parameters' translation, the ORM session's
    layers), about 0.1 ms of CPU for the lead intake's 40-parameter INSERT (bench/TUNING.md item 26).
    Only where SQLAlchemy would change no value: a statement with a bind or result processor (a
    SQLite DateTime, JSON; a native boolean's check excepted), a value of its own (the `1` of
    `col + 1`, which SQLAlchemy sends as a parameter the caller does not give), a positional paramstyle, a
    parameter name that needs escaping or a parameter expanded at execution (IN lists) is run by `session.execute` as usual, and so is
    every statement on a session with pending ORM objects. Statement events
    (`before/after_cursor_execute`) fire as for any statement. The cache is bounded: a statement
    built anew on every call is only compiled every time. Returns the CursorResult."""
    conn = session.connection() if hasattr(session, "get_bind") else session
    dialect = conn.dialect
    key = (dialect.name, id(stmt))
    hit = _DRIVER_SQL.get(key)
    if hit is None or hit[1] is not stmt:
        if len(_DRIVER_SQL) >= _DRIVER_SQL_MAX:
            _DRIVER_SQL.clear()
        hit = _DRIVER_SQL[key] = (_plain_sql(stmt, dialect), stmt)
    if hit[0] is None or (conn is not session and (session.new or session.dirty or session.deleted)):
        return session.execute(stmt, params)
    return conn.exec_driver_sql(hit[0], params)


def _plain_sql(stmt, dialect) -> str | None:
    """The compiled SQL of `stmt` when running it needs nothing from SQLAlchemy but the text."""
    compiled = stmt.compile(dialect=dialect)
    if compiled.positional or compiled.escaped_bind_names or "__[POSTCOMPILE" in compiled.string:
        return None  # (a name SQLAlchemy escapes in the SQL would not match the caller's parameters)
    if any(not bind.required for bind in compiled.binds.values()):
        return None  # a value the statement carries itself (`col + 1`): the caller does not pass it
    for name in compiled._bind_processors:
        # a native boolean's processor only checks that the value is a bool (or None): the driver
        # sends a bool as it is, and anything else is refused by the database, not stored wrongly
        bind = compiled.binds.get(name)
        if bind is None or not (dialect.supports_native_boolean and isinstance(bind.type, Boolean)):
            return None
    for col in getattr(compiled, "_result_columns", ()):
        if col[3].dialect_impl(dialect).result_processor(dialect, None) is not None:
            return None
    return compiled.string


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING)


def messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add `outbox` and `processed_events` to a service's metadata."""
    outbox = Table(
        "outbox", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("envelope", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
        Column("unroutable", Boolean, nullable=False, server_default=false()),
    )
    Index("ix_outbox_pending", outbox.c.id,
          postgresql_where=outbox.c.published_at.is_(None),
          sqlite_where=outbox.c.published_at.is_(None))
    inbox = Table(
        "processed_events", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


def rate_limit_table(metadata: MetaData) -> Table:
    """Add `rate_limits` (web/ratelimit.py: public endpoints, per client address and window)."""
    return Table(
        "rate_limits", metadata,
        Column("scope", String(40), primary_key=True),
        Column("client", String(64), primary_key=True),
        Column("window", BigInteger, primary_key=True, autoincrement=False),
        Column("hits", Integer, nullable=False),
    )


def make_engine(url: str, **kw) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # one writer at a time per file, taking turns on a lock file rather than in SQLite's busy
        # handler (crm_shared.sqlitelock); the connection gives the lock back when its transaction ends
        write_lock_path = sqlitelock.lock_path(make_url(url).database or "")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False,
                                                  "factory": sqlitelock.LockingConnection}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see below)
            if isinstance(dbapi_conn, sqlitelock.LockingConnection) and write_lock_path:
                dbapi_conn.write_lock = sqlitelock.WriteLock(write_lock_path)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - trivial
            # Take the write lock up front: SQLite's deferred transactions fail with "database is
            # locked" when two of them try to upgrade a read lock at once, instead of waiting.
            # Before it, the file's write lock of crm_shared.sqlitelock, given back at COMMIT/ROLLBACK.
            lock = getattr(conn.connection.dbapi_connection, "write_lock", None)
            try:
                sqlitelock.begin_immediate(lock, conn.exec_driver_sql)
            except sqlite3.OperationalError as e:  # waited WAIT_SECONDS for the lock: SQLite's own busy timeout
                raise exc.OperationalError("BEGIN IMMEDIATE", None, e) from e
        return engine
    # The pool's liveness check on checkout: `_check_on_checkout` below, which asks the server
    # (SQLAlchemy's pre-ping, one round trip) only when the connection does not look idle and
    # healthy from here. pool_pre_ping=True asks every time.
    ping_always = kw.pop("pool_pre_ping", None)
    # A database that drops packets instead of refusing them must not hang a request until the
    # kernel gives up (minutes): the connection attempt and any unacknowledged write end after a
    # few seconds, and the caller answers 503 with Retry-After like for a refused connection.
    connect_args = {"connect_timeout": int(os.environ.get("DB_CONNECT_TIMEOUT", "5")),
                    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
                    "tcp_user_timeout": int(os.environ.get("DB_TCP_USER_TIMEOUT_MS", "15000"))}
    kw["connect_args"] = {**connect_args, **kw.get("connect_args", {})}
    if "poolclass" not in kw:
        kw.setdefault("pool_size", int(os.environ.get("DB_POOL_SIZE", "5")))
        kw.setdefault("max_overflow", int(os.environ.get("DB_MAX_OVERFLOW", "10")))
    engine = create_engine(url, pool_pre_ping=bool(ping_always), **kw)
    if ping_always is None:
        event.listen(engine, "checkout", _check_on_checkout(engine.dialect))

    @event.listens_for(engine, "handle_error")
    def _unusable(ctx):
        # A connection cut in the middle of a query stays in the pool with a query "active" and
        # no server to finish it: psycopg then refuses the pre-ping's autocommit switch with a
        # ProgrammingError, which SQLAlchemy does not count as a disconnect, so the request got a
        # 500 instead of a fresh connection. It is one: throw the connection away.
        orig = ctx.original_exception
        if type(orig).__name__ == "ProgrammingError" and "transaction status ACTIVE" in str(orig):
            ctx.is_disconnect = True
    return engine


def _check_on_checkout(dialect):
    """A pool `checkout` listener doing the pre-ping's work without its round trip when it can: a
    pooled psycopg connection whose libpq status is OK, whose transaction status is IDLE (the pool
    rolled it back on check-in) and whose socket has nothing to read (no error, no EOF: a server
    that restarts, or kills the backend, or a proxy that closes idle connections, says so, and
    the bytes or the EOF wait on the socket) is handed out as it is. Anything else is pinged
    exactly as `pool_pre_ping` pings (SQLAlchemy's `do_ping`, with the `handle_error` listeners),
    and a failed ping replaces the connection and invalidates the pool's older ones, as the
    pre-ping does. What this gives up: a peer that vanished without a word (a partition, a dead
    host) is found by the request's first statement (after DB_TCP_USER_TIMEOUT_MS, then a 503 and
    the pool renewed) rather than by the ping (after the same timeout). That saves one round trip
    per request (a checkout per request), about 0.1 ms of CPU and a wake-up of the server."""
    from psycopg import pq

    def check(dbapi_connection, record, proxy):
        pgconn = getattr(dbapi_connection, "pgconn", None)
        if (pgconn is not None and pgconn.status == pq.ConnStatus.OK
                and pgconn.transaction_status == pq.TransactionStatus.IDLE and not _readable(pgconn.socket)):
            return
        if not dialect._do_ping_w_event(dbapi_connection):  # the pre-ping, as SQLAlchemy does it
            raise exc.InvalidatePoolError()
    return check


def _readable(fd: int) -> bool:
    """Bytes (or an EOF, or an error) wait on the socket: for an idle connection, the server spoke."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # POLLIN, or POLLHUP / POLLERR / POLLNVAL
    except (OSError, ValueError):
        return True  # a closed or bad descriptor: let the ping tell


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    with engine.connect() as c:
        c.execute(text("SELECT 1"))
