"""The embedded default's write lock (crm_shared.sqlitelock): writers of several processes and
threads queue for a SQLite file, every transaction's end gives the lock back, and a writer that
dies or a thread that nests transactions cannot wedge the others."""
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


def _take_and_say(path, took):
    lock = sqlitelock.for_file(str(path))
    lock.acquire()
    took.set()
    lock.release()


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path):
    # (SQLite itself forbids carrying an open transaction across fork(); the lock is tested alone)
    path = tmp_path / "svc.db"
    lock = sqlitelock.for_file(str(path))
    ctx = multiprocessing.get_context("fork")
    took = ctx.Event()
    lock.acquire()
    try:
        # forked while this thread holds the lock (flock and thread lock): the child must wait
        child = ctx.Process(target=_take_and_say, args=(path, took))
        child.start()
        assert not took.wait(0.5)
    finally:
        lock.release()
    assert took.wait(30)
    child.join(30)
    assert child.exitcode == 0


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
    assert sqlitelock.for_file(":memory:") is None and sqlitelock.for_file("") is None
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
