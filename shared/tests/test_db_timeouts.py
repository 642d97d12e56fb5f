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
