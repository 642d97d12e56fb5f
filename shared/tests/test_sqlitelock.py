"""The embedded default's write lock (crm_shared.sqlitelock): writers of several processes and
threads take turns on a SQLite file, every transaction's end gives the lock back, a writer that
dies or a thread that nests transactions cannot wedge the others, and no process keeps the file
to its own threads while another waits."""
import fcntl
import multiprocessing
import os
import signal
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from crm_shared import sqlitelock
from crm_shared.bus.base import OutgoingMessage, Topology
from crm_shared.bus.sqlite import SqliteBus
from crm_shared.db import make_engine
from crm_shared.inbox import is_transient


def _locked_elsewhere(db_path) -> bool:
    """Is the file's write lock held by some open file description (tried from a fresh one)?"""
    fd = os.open(os.path.abspath(str(db_path)) + "-writelock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "svc.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        c.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield path, engine
    engine.dispose()


def test_every_end_of_a_transaction_gives_the_lock_back(db):
    path, engine = db
    with engine.begin() as c:
        c.execute(text("UPDATE counter SET n = n + 1"))
        assert _locked_elsewhere(path)
    assert not _locked_elsewhere(path)  # commit
    with pytest.raises(RuntimeError):
        with engine.begin() as c:
            c.execute(text("UPDATE counter SET n = n + 1"))
            raise RuntimeError("boom")
    assert not _locked_elsewhere(path)  # rollback
    with pytest.raises(Exception):
        with engine.begin() as c:
            c.execute(text("INSERT INTO counter VALUES (1, 0)"))  # primary key taken
    assert not _locked_elsewhere(path)  # failed statement, then rollback
    conn = engine.connect()
    conn.begin()
    conn.execute(text("SELECT n FROM counter")).scalar_one()
    assert _locked_elsewhere(path)
    conn.close()  # the pool rolls the checked-in connection back
    assert not _locked_elsewhere(path)
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 1


def test_a_thread_nesting_a_second_transaction_gets_sqlites_error_not_a_hang(db, monkeypatch):
    path, engine = db
    monkeypatch.setattr(sqlitelock, "WAIT_SECONDS", 0.3)
    with engine.begin() as outer:
        outer.execute(text("UPDATE counter SET n = n + 1"))
        started = time.monotonic()
        with pytest.raises(Exception, match="database is locked"):
            with engine.begin() as inner:
                inner.execute(text("SELECT 1"))
        assert time.monotonic() - started < 5
    assert not _locked_elsewhere(path)
    with engine.begin() as c:  # and everything still works
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 1


def _count(path, rounds, threads):
    engine = make_engine(f"sqlite:///{path}")

    def run():
        for _ in range(rounds):
            with engine.begin() as c:  # a read, then a write of what was read: lost updates if two overlap
                n = c.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                c.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    ts = [threading.Thread(target=run) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    engine.dispose()


def test_writers_of_several_processes_and_threads_take_turns(db):
    path, engine = db
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_count, args=(path, 50, 3)) for _ in range(3)]
    [p.start() for p in procs]
    _count(path, 50, 2)
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 3 * 50 * 3 + 50 * 2
    assert not _locked_elsewhere(path)


def _hold_forever(path, ready):
    engine = make_engine(f"sqlite:///{path}")
    conn = engine.connect()
    conn.begin()
    conn.execute(text("UPDATE counter SET n = n + 100"))
    ready.set()
    time.sleep(600)


def test_a_writer_killed_in_its_transaction_lets_the_others_through(db):
    path, engine = db
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(path, ready))
    holder.start()
    assert ready.wait(30)
    assert _locked_elsewhere(path)
    done = threading.Event()

    def write():
        with engine.begin() as c:
            c.execute(text("UPDATE counter SET n = n + 1"))
        done.set()

    t = threading.Thread(target=write)
    t.start()
    assert not done.wait(0.5)  # waiting for the holder
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert done.wait(30), "the kernel gives a dead process's lock back"
    t.join()
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 1  # the dead one's update is gone


def test_the_bus_file_takes_the_same_lock_and_gives_it_back(tmp_path):
    path = tmp_path / "bus.db"
    bus = SqliteBus(f"sqlite:///{path}", Topology("t"))
    bus.declare_consumer("svc", ["lead.created"])
    assert not _locked_elsewhere(path)
    assert bus.publish([OutgoingMessage("m1", "lead.created", b"{}")]) == set()
    assert not _locked_elsewhere(path)
    with pytest.raises(RuntimeError):
        with bus._tx() as c:
            c.execute("DELETE FROM messages")
            assert _locked_elsewhere(path)
            raise RuntimeError("boom")
    assert not _locked_elsewhere(path)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone()[0] == 1  # rolled back


def test_in_memory_databases_have_no_lock_file(tmp_path):
    assert sqlitelock.lock_path(":memory:") is None and sqlitelock.lock_path("") is None
    engine = make_engine("sqlite://")
    with engine.begin() as c:
        assert c.execute(text("SELECT 1")).scalar_one() == 1


def test_a_process_holding_the_lock_too_long_gets_the_others_sqlites_error(db, monkeypatch):
    path, engine = db
    monkeypatch.setattr(sqlitelock, "WAIT_SECONDS", 0.5)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(path, ready))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        with pytest.raises(Exception, match="database is locked") as caught:
            with engine.begin() as c:
                c.execute(text("UPDATE counter SET n = n + 1"))
        assert 0.4 < time.monotonic() - started < 5
        assert is_transient(caught.value)  # answered 503 + Retry-After, retried by a consumer
        assert _locked_elsewhere(path)  # still the holder's
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    with engine.begin() as c:  # this process's lock was given back after the failure
        c.execute(text("UPDATE counter SET n = n + 1"))
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 1


def _write_many(path, seconds, out):
    engine = make_engine(f"sqlite:///{path}")
    done = [0]

    def run():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with engine.begin() as c:
                c.execute(text("UPDATE counter SET n = n + 1"))
                time.sleep(0.002)  # a transaction's own work, the lock held
            done[0] += 1

    ts = [threading.Thread(target=run) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    out.put(done[0])


def test_two_busy_processes_both_get_turns(db):
    """Four threads in each of two processes writing without pause: neither process is starved
    (a lock per process handed from thread to thread would let one process keep the file)."""
    path, engine = db
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_write_many, args=(path, 3.0, out)) for _ in range(2)]
    [p.start() for p in procs]
    counts = sorted(out.get(timeout=60) for _ in procs)
    [p.join(30) for p in procs]
    assert counts[0] > 0.25 * counts[1], counts
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == sum(counts)
