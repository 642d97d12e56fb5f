"""The shared development clock: every process reads the offset from one file; moving it makes the
workers run their jobs at once; production refuses it."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from crm_shared import clock
from crm_shared.cli import main
from crm_shared.config import Settings
from crm_shared.scheduler import Scheduler
from crm_shared.service import Job


def test_file_clock_reads_the_shared_offset(tmp_path):
    path = str(tmp_path / "clock.json")
    c, other = clock.FileClock(path), clock.FileClock(path)  # two processes' clocks
    assert abs((c.now() - datetime.now(timezone.utc)).total_seconds()) < 1  # no file: real time
    first = c.epoch()
    clock.advance(path, days=31)
    for each in (c, other):
        assert timedelta(days=31) - timedelta(seconds=1) < each.now() - datetime.now(timezone.utc) < timedelta(days=31, seconds=1)
    moved = c.epoch()
    assert moved != first
    clock.nudge(path)  # same time, new epoch: the workers run their jobs again
    assert c.epoch() != moved and abs(clock.read_offset(path) - 31 * 86400) < 1e-6
    (tmp_path / "clock.json").write_text('{"offset_seconds": "soon"}')
    with pytest.raises(ValueError):
        c.now()


def test_production_refuses_the_movable_clock(tmp_path):
    s = Settings.from_env("leads", {"CRM_CLOCK_FILE": str(tmp_path / "c.json"), "CRM_ENV": "production",
                                    "CRM_JWT_SECRET": "x" * 40, "DATABASE_URL": "postgresql+psycopg://h/db"})
    with pytest.raises(RuntimeError, match="CRM_CLOCK_FILE"):
        s.check()
    assert isinstance(clock.clock_from_settings(Settings.from_env("leads", {})), clock.Clock)
    assert isinstance(clock.clock_from_settings(Settings.from_env("leads", {"CRM_CLOCK_FILE": "x"})), clock.FileClock)
    r = CliRunner().invoke(main, ["clock", "--days", "1"], env={"CRM_ENV": "production"})
    assert r.exit_code != 0 and "production" in r.output


def test_crm_clock_moves_the_shared_clock(tmp_path):
    env = {"CRM_CLOCK_FILE": str(tmp_path / "clock.json")}
    r = CliRunner().invoke(main, ["clock", "--days", "2", "--hours", "12"], env=env)
    assert r.exit_code == 0, r.output
    assert clock.read_offset(env["CRM_CLOCK_FILE"]) == 2.5 * 86400
    r = CliRunner().invoke(main, ["clock", "--reset"], env=env)
    assert r.exit_code == 0 and clock.read_offset(env["CRM_CLOCK_FILE"]) == 0


class _Runtime:
    name = "t"
    is_postgres = False

    def __init__(self, c):
        self.clock = c


def test_the_scheduler_runs_every_job_when_the_clock_moves(tmp_path):
    path = str(tmp_path / "clock.json")
    runs = {"daily": 0, "hourly": 0}
    jobs = (Job("daily", lambda rt: runs.__setitem__("daily", runs["daily"] + 1), cron="15 0 * * *"),
            Job("hourly", lambda rt: runs.__setitem__("hourly", runs["hourly"] + 1), every_seconds=3600))
    stop = threading.Event()
    sched = Scheduler(_Runtime(clock.FileClock(path)), jobs, tick=0.05)
    t = threading.Thread(target=sched.run, args=(stop,))
    t.start()
    try:
        deadline = time.monotonic() + 5
        while runs["hourly"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert runs == {"daily": 0, "hourly": 1}  # the interval job at start, the daily one not yet
        clock.advance(path, days=1)
        deadline = time.monotonic() + 5
        while runs != {"daily": 1, "hourly": 2} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runs == {"daily": 1, "hourly": 2}
        time.sleep(0.3)
        assert runs == {"daily": 1, "hourly": 2}  # once per move, not on every tick
    finally:
        stop.set()
        t.join(5)
