"""The platform as real processes: each service's HTTP API under gunicorn and its worker (notify's
scheduled jobs in a process of their own beside it, as in docker-compose.yml and deploy/k8s), each
service on its own database, all on one bus. `crm run` uses it, and so do the cross-service tests,
the demo and the end-to-end benchmarks, so they all start exactly what production starts.

    with Platform("var", bus_url=..., database_urls={...}, ports="free") as p:
        p.wait_ready()
        requests.get(p.url("leads") + "/healthz")
        p.kill_worker("notify")            # SIGKILL, as a crash would
        p.start_worker("notify")
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import service as services
from .config import Settings

# the outbox relay's poll period (ms) for a service on SQLite (`service_env`); 200 elsewhere. An
# empty poll there takes no lock (`Relay._pending`), and an idle relay slows to 50 ms by itself.
SQLITE_OUTBOX_POLL_MS = 2

# the services whose scheduled jobs run in a process of their own (`crm worker NAME --parts schedule`)
# beside the worker that consumes and relays (`--parts consume,relay`): notify's dispatch job sends in
# bursts of CPU that would hold up its consumer in the same process (bench/TUNING.md, sections 17-18)
JOBS_APART = ("notify",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Service:
    name: str
    port: int
    database_url: str
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    jobs: subprocess.Popen | None = None  # the scheduled jobs' own process (JOBS_APART)
    logs: list = field(default_factory=list)


class Platform:
    """Start, stop, kill and restart the services' processes.

    `database_urls` maps a service to its DATABASE_URL (default: a SQLite file per service in
    `data_dir`); `bus_url` defaults to the embedded bus file in `data_dir`. `ports` is a dict, or
    "default" (each service's own port, as `make run`), or "free" (any free port, for tests that run
    beside other things). `log_dir`: each process writes its output to a file there; None leaves it
    on this process's stdout/stderr. `env` is added to every process's environment. `jobs_apart`:
    the services whose jobs run in a process of their own (default `JOBS_APART`; `()`: every
    service's worker runs all its parts, the layout before)."""

    def __init__(self, data_dir: str, *, names: list[str] | None = None, bus_url: str | None = None,
                 namespace: str | None = None, database_urls: dict[str, str] | None = None,
                 ports: dict[str, int] | str = "default", env: dict[str, str] | None = None,
                 log_dir: str | None = None, web_workers: int | None = None,
                 jobs_apart: tuple[str, ...] | None = None):
        self.jobs_apart = tuple(JOBS_APART if jobs_apart is None else jobs_apart)
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_dir = log_dir
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
        self.env = dict(os.environ, CRM_DATA_DIR=self.data_dir)
        self.env.update(env or {})
        if bus_url:
            self.env["BUS_URL"] = bus_url
        self.env.setdefault("BUS_URL", f"sqlite:///{self.data_dir}/bus.db")
        if namespace:
            self.env["BUS_NAMESPACE"] = namespace
        if self.env.get("CRM_ENV", "development") != "production":
            # the shared, movable development clock (`crm clock`); real time until someone moves it
            self.env.setdefault("CRM_CLOCK_FILE", os.path.join(self.data_dir, "clock.json"))
        if web_workers:
            self.env["WEB_CONCURRENCY"] = str(web_workers)
        self.env.pop("DATABASE_URL", None)  # each service gets its own below
        names = names or services.installed()
        if not names:
            raise RuntimeError("no service is installed; run `make install` first")
        urls = database_urls or {}
        self.services: dict[str, _Service] = {}
        for name in names:
            d = services.load(name)
            port = (ports.get(name, d.port) if isinstance(ports, dict)
                    else free_port() if ports == "free" else d.port)
            url = urls.get(name) or Settings.from_env(name, self.env).database_url
            self.services[name] = _Service(name, port, url)
        if "service-desk" in self.services:  # notify's survey links point at this platform's service desk
            self.env.setdefault("NOTIFY_CSAT_URL", self.url("service-desk") + "/v1/csat/{token}")

    # -- what to reach ---------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.services[name].port}"

    @property
    def bus_url(self) -> str:
        return self.env["BUS_URL"]

    @property
    def clock_file(self) -> str | None:
        return self.env.get("CRM_CLOCK_FILE")

    @property
    def namespace(self) -> str:
        return self.env.get("BUS_NAMESPACE", "crm")

    def service_env(self, name: str) -> dict[str, str]:
        s = self.services[name]
        metrics_dir = os.path.join(self.data_dir, "metrics", name)
        env = dict(self.env, DATABASE_URL=s.database_url, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
        if s.database_url.startswith("sqlite") and "OUTBOX_POLL_MS" not in self.env:
            # SQLite has no LISTEN/NOTIFY: the relay (in the worker) learns of rows its web
            # processes commit only by polling, so its poll period is the commit → publish hop.
            # A poll of the pending-rows index is a read of a few tens of microseconds, with no lock.
            env["OUTBOX_POLL_MS"] = str(SQLITE_OUTBOX_POLL_MS)
        return env

    # -- lifecycle -------------------------------------------------------------------------------
    def prepare(self) -> "Platform":
        """Bring every database to the latest schema and declare the bus topology."""
        from .bus import connect
        from .migrations import upgrade
        for name, s in self.services.items():
            upgrade(services.load(name), s.database_url)
            metrics_dir = self.service_env(name)["PROMETHEUS_MULTIPROC_DIR"]
            os.makedirs(metrics_dir, exist_ok=True)
            for f in os.listdir(metrics_dir):  # multi-process metric files of a previous run
                os.remove(os.path.join(metrics_dir, f))
        st = Settings.from_env("cli", self.env)
        connect(st.bus_url, st.bus_namespace).declare_platform(st.retry_delays_ms)
        return self

    def start(self, wait: bool = False, timeout: float = 90) -> "Platform":
        self.prepare()
        for name in self.services:
            self.start_web(name)
            self.start_worker(name)
        if wait:
            self.wait_ready(timeout)
        return self

    def _spawn(self, name: str, part: str, argv: list[str]) -> subprocess.Popen:
        env = self.service_env(name)
        os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
        out = None
        if self.log_dir:
            out = open(os.path.join(self.log_dir, f"{name}-{part}.log"), "ab")
            self.services[name].logs.append(out)
        # a session of its own: Ctrl-C in a terminal reaches `crm run`, which stops the children in
        # order; and a kill reaches the whole process group (gunicorn's workers too)
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)

    def start_web(self, name: str) -> None:
        from .cli import _gunicorn_argv
        s = self.services[name]
        s.web = self._spawn(name, "web", _gunicorn_argv(services.load(name), s.port))

    def start_worker(self, name: str) -> None:
        """The service's worker; for a service in `jobs_apart`, its jobs process too."""
        argv = [sys.executable, "-m", "crm_shared.cli", "worker", name]
        s = self.services[name]
        if name in self.jobs_apart:
            s.worker = self._spawn(name, "worker", argv + ["--parts", "consume,relay"])
            s.jobs = self._spawn(name, "jobs", argv + ["--parts", "schedule"])
        else:
            s.worker = self._spawn(name, "worker", argv)

    def _signal(self, p: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        try:
            if sig == signal.SIGKILL:
                os.killpg(p.pid, sig)  # the whole group, as a crash of the host would
            else:
                p.send_signal(sig)
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            return p.wait(5)
        except ProcessLookupError:
            return p.wait(timeout)

    def stop_worker(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop the service's worker (and its jobs process, if it has one); the worker's exit code."""
        s = self.services[name]
        self._signal(s.jobs, sig, timeout)
        return self._signal(s.worker, sig, timeout)

    def kill_worker(self, name: str) -> None:
        self.stop_worker(name, signal.SIGKILL)

    def stop_web(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        return self._signal(self.services[name].web, sig, timeout)

    def processes(self) -> list[tuple[str, str, subprocess.Popen]]:
        return [(s.name, part, p) for s in self.services.values()
                for part, p in (("web", s.web), ("worker", s.worker), ("jobs", s.jobs)) if p is not None]

    def exited(self) -> list[str]:
        """The processes that have stopped although nobody asked them to."""
        return [f"{n} {part} (exit {p.returncode})" for n, part, p in self.processes() if p.poll() is not None]

    def ready(self) -> bool:
        import requests
        try:
            return all(requests.get(self.url(n) + "/readyz", timeout=2).status_code == 200 for n in self.services)
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 90) -> "Platform":
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.exited():
                raise RuntimeError(f"the platform did not start: {', '.join(self.exited())}{self._log_hint()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the platform was not ready after {timeout}s{self._log_hint()}")
            time.sleep(0.3)
        return self

    def _log_hint(self) -> str:
        return f"; see the logs in {self.log_dir}" if self.log_dir else ""

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every process (webs drain their requests, workers finish the message in hand),
        SIGKILL what is still running after `timeout`."""
        procs = [p for _, _, p in self.processes() if p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        for s in self.services.values():
            for f in s.logs:
                f.close()
            s.logs.clear()

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
