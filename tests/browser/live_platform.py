"""The platform as the browser tests need it: the four services (web + worker each) on free ports
with SQLite files and the embedded bus, and the development gateway in front of them, serving the
consoles. Usable alone for a manual look: `python tests/browser/live_platform.py DATA_DIR`."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("leads", "sales", "service-desk", "notify")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Platform:
    def __init__(self, data_dir: Path, log_dir: Path | None = None):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir or data_dir)
        self.ports = {name: free_port() for name in SERVICES}
        self.procs: list[subprocess.Popen] = []
        self.server = None
        self.url = None

    def env(self) -> dict:
        env = dict(os.environ, CRM_DATA_DIR=str(self.data_dir), WEB_CONCURRENCY="1", WEB_THREADS="12",
                   LOG_LEVEL="WARNING", CRM_ENV="development")
        for k in ("BUS_URL", "DATABASE_URL", "BUS_NAMESPACE", "CRM_OIDC_ISSUER", "CRM_JWKS_URL"):
            env.pop(k, None)
        env["BUS_URL"] = f"sqlite:///{self.data_dir}/bus.db"
        return env

    def start(self, timeout: float = 90) -> "Platform":
        from crm_shared.gateway import Gateway, serve, upstreams_from
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        crm = [sys.executable, "-m", "crm_shared.cli"]
        subprocess.run(crm + ["migrate", *SERVICES], env=env, check=True, capture_output=True)
        subprocess.run(crm + ["declare"], env=env, check=True, capture_output=True)
        for name in SERVICES:
            metrics = self.data_dir / "metrics" / name
            metrics.mkdir(parents=True, exist_ok=True)
            penv = dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics))
            for role, argv in (("web", ["web", name, "--port", str(self.ports[name])]), ("worker", ["worker", name])):
                log = open(self.log_dir / f"{name}-{role}.log", "wb")
                self.procs.append(subprocess.Popen(crm + argv, env=penv, stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True))
        gw = Gateway(upstreams_from(self.ports), ROOT / "frontends", env=env)
        self.server = serve(gw, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                self.stop()
                raise RuntimeError(f"a platform process exited; see the logs in {self.log_dir}")
            try:
                if all(requests.get(f"{self.url}/{n}/readyz", timeout=2).status_code == 200 for n in SERVICES):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("the platform did not get ready in time")

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 15)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
        self.procs = []


if __name__ == "__main__":
    p = Platform(Path(sys.argv[1] if len(sys.argv) > 1 else "var-browser")).start()
    print(p.url + "/app/", p.ports, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        p.stop()
