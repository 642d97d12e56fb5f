"""Time-based jobs of a service (recycling leads, SLA scans, overdue payments…), run by the worker.

Jobs read the time from the runtime's clock and must be idempotent: the scheduler may run a job
again after a crash, and runs every job at once when the shared development clock is moved
(`Clock.epoch` changes), so a month moved forward shows its overdue payments within a second.
On PostgreSQL a job holds an advisory lock while it runs, so two workers of one service never run
the same job at once."""
from __future__ import annotations

import logging
import threading
import time
import zlib
from datetime import datetime, timezone

from croniter import croniter
from sqlalchemy import func, select

from .service import Job

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, runtime, jobs: tuple[Job, ...], tick: float = 1.0):
        self.rt = runtime
        self.jobs = jobs
        self.tick = tick
        self._next: dict[str, float] = {}

    def _due_after(self, job: Job, now_mono: float) -> float:
        if job.every_seconds is not None:
            return now_mono + job.every_seconds
        now = datetime.now(timezone.utc)
        nxt = croniter(job.cron, now).get_next(datetime)
        return now_mono + (nxt - now).total_seconds()

    def run_job(self, job: Job) -> bool:
        """Run one job now (holding its lock on PostgreSQL). False if another worker holds it."""
        if not self.rt.is_postgres:
            job.run(self.rt)
            return True
        key = zlib.crc32(f"job:{self.rt.name}:{job.name}".encode())
        with self.rt.engine.connect() as conn:
            if not conn.execute(select(func.pg_try_advisory_lock(key))).scalar_one():
                return False
            try:
                job.run(self.rt)
            finally:
                conn.execute(select(func.pg_advisory_unlock(key)))
                conn.commit()
        return True

    def _epoch(self):
        try:
            return self.rt.clock.epoch()
        except Exception:  # an unreadable clock file: keep the jobs on their timers
            log.exception("could not read the clock")
            return None

    def run(self, stop: threading.Event) -> None:
        start = time.monotonic()
        for job in self.jobs:
            self._next[job.name] = start if job.every_seconds is not None else self._due_after(job, start)
        epoch = self._epoch()
        while not stop.is_set():
            now = time.monotonic()
            moved = self._epoch()
            if moved != epoch:  # the time was moved by hand: whatever fell due meanwhile runs now
                epoch = moved
                log.info("clock moved, running every job")
                for job in self.jobs:
                    self._next[job.name] = now
            for job in self.jobs:
                if stop.is_set():
                    return
                if now >= self._next[job.name]:
                    try:
                        self.run_job(job)
                    except Exception:
                        log.exception("scheduled job failed", extra={"job": job.name})
                    self._next[job.name] = self._due_after(job, time.monotonic())
            stop.wait(self.tick)
