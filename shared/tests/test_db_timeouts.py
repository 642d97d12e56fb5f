"""A PostgreSQL server that accepts the connection and then says nothing (a dropped network, a
hung host) ends a connection attempt after DB_CONNECT_TIMEOUT seconds, and the API answers 503
with Retry-After, instead of hanging the request until the kernel gives up."""
import socket
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from crm_shared import db
from crm_shared.testing import demo_settings, make_demo_service
from crm_shared.web import create_service_app


@pytest.fixture
def silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accepted, never answered
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"postgresql+psycopg://postgres@127.0.0.1:{srv.getsockname()[1]}/nowhere"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_silent_database_ends_the_connection_attempt_after_the_timeout(silent_server, monkeypatch):
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "2")
    engine = db.make_engine(silent_server)
    t0 = time.monotonic()
    with pytest.raises(OperationalError):
        db.ping(engine)
    assert time.monotonic() - t0 < 10
    engine.dispose()


def test_the_api_answers_503_while_the_database_is_silent(silent_server, monkeypatch, tmp_path):
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "2")
    settings = demo_settings("a", silent_server, f"sqlite:///{tmp_path}/bus.db", "t")
    app = create_service_app(make_demo_service("a"), settings, testing=True)
    t0 = time.monotonic()
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] and time.monotonic() - t0 < 10


def test_a_pooled_connection_left_mid_query_is_replaced_not_an_error(pg_url):
    """After a connection reset in the middle of a query, the pooled connection keeps a query
    'active' that will never finish; the next checkout's pre-ping must replace it (it used to
    surface as psycopg's ProgrammingError, a 500)."""
    from sqlalchemy import text
    engine = db.make_engine(pg_url, pool_size=1, max_overflow=0)
    with engine.connect() as c:
        raw = c.connection.dbapi_connection
    raw.pgconn.send_query(b"select 1")  # back in the pool, left mid-query
    with engine.connect() as c:
        assert c.execute(text("select 2")).scalar() == 2
    engine.dispose()


class Pings:
    """Counts the pre-ping's round trips (the dialect's do_ping) on an engine."""

    def __init__(self, engine, monkeypatch):
        self.n = 0
        real = engine.dialect.do_ping

        def counted(dbapi_connection):
            self.n += 1
            return real(dbapi_connection)
        monkeypatch.setattr(engine.dialect, "do_ping", counted)


def _backend_pid(engine):
    from sqlalchemy import text
    with engine.connect() as c:
        return c.execute(text("select pg_backend_pid()")).scalar()


def test_an_idle_healthy_pooled_connection_is_handed_out_without_a_round_trip(pg_url, monkeypatch):
    """The checkout's liveness check asks the server only when the connection does not look idle
    and healthy from the client (see db._check_on_checkout); pool_pre_ping=True still asks each time."""
    engine = db.make_engine(pg_url, pool_size=1, max_overflow=0)
    pings = Pings(engine, monkeypatch)
    pids = {_backend_pid(engine) for _ in range(5)}
    assert len(pids) == 1 and pings.n == 0  # the same connection, five checkouts, no ping
    engine.dispose()
    always = db.make_engine(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    pings = Pings(always, monkeypatch)
    for _ in range(3):
        _backend_pid(always)
    assert pings.n == 2  # every checkout but the first (a fresh connection)
    always.dispose()


def test_a_pooled_connection_whose_backend_was_killed_is_replaced_not_an_error(pg_url, monkeypatch):
    """A server restart, pg_terminate_backend, or a proxy closing idle connections: the server
    speaks (FATAL, then EOF) while the connection sits in the pool; the next checkout pings it,
    replaces it, and the request runs on a new one."""
    import psycopg
    engine = db.make_engine(pg_url, pool_size=2, max_overflow=0)
    pings = Pings(engine, monkeypatch)
    with engine.connect() as a, engine.connect() as b:  # two pooled connections
        old = {a.connection.dbapi_connection.info.backend_pid, b.connection.dbapi_connection.info.backend_pid}
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        for pid in old:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
    time.sleep(0.3)  # the FATAL and the EOF reach the client side
    new = _backend_pid(engine)
    assert new not in old and pings.n >= 1
    assert _backend_pid(engine) not in old  # the other one was invalidated with the pool
    engine.dispose()


def test_a_connection_the_server_closed_for_idleness_is_replaced(pg_url, monkeypatch):
    """PostgreSQL's idle_session_timeout (like a proxy's idle timeout) closes a pooled connection."""
    from sqlalchemy import text
    engine = db.make_engine(pg_url, pool_size=1, max_overflow=0)
    with engine.connect() as c:
        c.execute(text("set idle_session_timeout = '100ms'"))
        c.commit()
        old = c.connection.dbapi_connection.info.backend_pid
    time.sleep(0.6)
    with engine.connect() as c:
        assert c.execute(text("select 3")).scalar() == 3
        assert c.connection.dbapi_connection.info.backend_pid != old
    engine.dispose()
