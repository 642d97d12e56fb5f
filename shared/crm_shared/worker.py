"""A service's worker process: event consumer, outbox relay and scheduler, one process by default.
Which of the three a process runs is the operator's choice (`crm worker NAME --parts`, or
`WORKER_PARTS`): notify runs its scheduled jobs in a process of their own, so a burst of job CPU
does not hold up its consumer (bench/TUNING.md, sections 17-18).
SIGTERM/SIGINT stop it cleanly: the message in hand is finished and acknowledged, the ones
prefetched but not started go back to the queue, pending outbox rows stay for the next start."""
from __future__ import annotations

import logging
import os
import signal
import threading

from . import logs, retention, tracing
from .bus import BusError
from .config import Settings
from .events.catalogue import SERVICES
from .inbox import Dispatcher
from .outbox import Relay
from .runtime import Runtime
from .scheduler import Scheduler
from .service import ServiceDefinition

log = logging.getLogger(__name__)

PARTS = ("consume", "relay", "schedule")


def parse_parts(value: str | None) -> dict[str, bool]:
    """`consume,relay,schedule` (any non-empty subset, any order; empty or None = all three) into
    `Worker`'s keyword flags. Raises ValueError naming the bad value and the allowed ones."""
    if value is None or not value.strip():
        return {p: True for p in PARTS}
    given = [p.strip().lower() for p in value.split(",")]
    allowed = f"expected a comma-separated list of {', '.join(PARTS)}"
    if "" in given:
        raise ValueError(f"worker parts {value!r}: an empty item; {allowed}")
    unknown = [p for p in given if p not in PARTS]
    if unknown:
        raise ValueError(f"worker parts {value!r}: unknown {', '.join(repr(u) for u in unknown)}; {allowed}")
    if len(set(given)) != len(given):
        raise ValueError(f"worker parts {value!r}: a part is named twice; {allowed}")
    return {p: p in given for p in PARTS}


def resolve_parts(option: str | None) -> dict[str, bool]:
    """`crm worker --parts` if given, else the environment's WORKER_PARTS, else all three."""
    return parse_parts(option if option is not None else os.environ.get("WORKER_PARTS"))


def declare_topology(rt: Runtime) -> None:
    delays = rt.settings.retry_delays_ms
    # Every service declares every consumer's queue, so nothing is published before its consumers'
    # queues exist. Where the broker's topology is loaded from definitions (and a service's user may
    # not create others' queues), BUS_DECLARE_PLATFORM=0 leaves only the service's own queues.
    if rt.name in SERVICES and os.environ.get("BUS_DECLARE_PLATFORM", "1") != "0":
        rt.bus.declare_platform(delays)
    rt.bus.declare_consumer(rt.name, sorted(rt.definition.handlers), delays)


class Worker:
    def __init__(self, runtime: Runtime, consume: bool = True, relay: bool = True, schedule: bool = True):
        self.rt = runtime
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.parts = {"consume": consume and bool(runtime.definition.handlers), "relay": relay,
                      "schedule": schedule}
        # the service's own jobs, and the platform's: outbox and inbox retention
        self.jobs = tuple(runtime.definition.jobs) + (retention.JOB,)

    def _consume(self):
        # the consume thread keeps one database connection from batch to batch (inbox.Dispatcher)
        dispatcher = Dispatcher(self.rt, self.rt.definition.handlers, own_connection=True)
        try:
            self.rt.bus.consume_batches(self.rt.name, dispatcher.handle_batch, self.stop,
                                        prefetch=self.rt.settings.prefetch, max_batch=self.rt.settings.consume_batch)
        finally:
            dispatcher.close()

    def start(self) -> "Worker":
        while not self.stop.is_set():
            try:
                declare_topology(self.rt)
                break
            except BusError as exc:
                log.warning("bus not reachable, retrying", extra={"error": str(exc)})
                self.stop.wait(2.0)
        targets = {"consume": self._consume, "relay": lambda: Relay(self.rt).run(self.stop),
                   "schedule": lambda: Scheduler(self.rt, self.jobs).run(self.stop)}
        for part, enabled in self.parts.items():
            if enabled:
                t = threading.Thread(target=self._guard(part, targets[part]), name=f"{self.rt.name}-{part}")
                t.start()
                self.threads.append(t)
        log.info("worker started", extra={"parts": [p for p, on in self.parts.items() if on]})
        return self

    def _guard(self, part, fn):
        def run():
            while not self.stop.is_set():
                try:
                    fn()
                except Exception:
                    log.exception("worker part crashed, restarting", extra={"part": part})
                    self.stop.wait(1.0)
        return run

    def shutdown(self, timeout: float = 30.0):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        log.info("worker stopped")


def main(definition: ServiceDefinition, settings: Settings | None = None,
         parts: dict[str, bool] | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT. `parts` (`resolve_parts`; None: from the environment):
    which of consume, relay and schedule this process runs."""
    flags = parts if parts is not None else resolve_parts(None)
    settings = settings or Settings.from_env(definition.name)
    logs.configure(definition.name, settings.log_level)
    rt = Runtime(definition, settings)
    if os.environ.get("WORKER_METRICS_PORT"):
        from prometheus_client import start_http_server
        start_http_server(int(os.environ["WORKER_METRICS_PORT"]), addr=os.environ.get("BIND_HOST", "127.0.0.1"))
    worker = Worker(rt, **flags)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    signal.signal(signal.SIGINT, lambda *_: worker.stop.set())
    worker.start()
    while not worker.stop.wait(0.5):
        pass
    worker.shutdown()
    rt.close()
    tracing.shutdown()  # flush the last spans (no-op when tracing is off)
