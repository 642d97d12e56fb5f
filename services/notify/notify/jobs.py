"""The notify service's scheduled jobs. Each reads the time from `runtime.clock` and is safe to run
again (the scheduler may, after a crash; on PostgreSQL two workers never run one job at once)."""
from __future__ import annotations

from crm_shared.service import Job

from . import care, digest, dispatch


def send_due(rt) -> None:
    """Send every due delivery; keep going while full batches come back."""
    from .config import config_of
    batch = config_of(rt).dispatch_batch
    for _ in range(50):
        if dispatch.run(rt) < batch:
            break


JOBS = (
    Job("send-due", send_due, every_seconds=1),
    Job("digests", digest.run, every_seconds=60),
    Job("greetings", care.run, every_seconds=60),
)
