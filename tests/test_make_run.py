"""The README's first command: `make run` starts the four services on SQLite files and the
embedded bus, Ctrl-C stops everything cleanly, and the data is still there at the next start."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from crm_shared.config import DEV_JWT_SECRET
from crm_shared.testing import wait_until
from crm_shared.web.auth import dev_token

ROOT = Path(__file__).resolve().parent.parent
SUPERVISOR = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "sup1", "Zhao", ["service_supervisor"])}
PORTS = {"leads": 8001, "sales": 8002, "service-desk": 8003, "notify": 8004}
GATEWAY = 8080  # the development gateway: consoles under /app/, services under their prefixes


def _ready():
    try:
        return all(requests.get(f"http://127.0.0.1:{p}/readyz", timeout=2).status_code == 200 for p in PORTS.values())
    except requests.RequestException:
        return False


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(data_dir, log):
    env = dict(os.environ, CRM_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING")
    env.pop("BUS_URL", None)
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _ctrl_c(p):
    os.killpg(p.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    p.wait(40)


@pytest.mark.slow
def test_make_run_starts_everything_and_ctrl_c_stops_it(tmp_path):
    busy = [p for p in [*PORTS.values(), GATEWAY] if _listening(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken: stop whatever runs there (another `make run`?)")
    log = open(tmp_path / "run.log", "wb")
    p = _start(tmp_path / "data", log)
    try:
        wait_until(_ready, timeout=90, interval=0.5, message="four services ready")
        for name, port in PORTS.items():
            assert requests.get(f"http://127.0.0.1:{port}/healthz").json()["service"] == name
            assert requests.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200
            assert requests.get(f"http://127.0.0.1:{port}/v1/anything").status_code in (401, 404)
        wait_until(lambda: _listening(GATEWAY), timeout=20, message="the development gateway")
        assert requests.get(f"http://127.0.0.1:{GATEWAY}/leads/healthz").json()["service"] == "leads"
        r = requests.get(f"http://127.0.0.1:{GATEWAY}/app/sales/")
        assert r.status_code == 200 and "importmap" in r.text
        assert requests.get(f"http://127.0.0.1:{GATEWAY}/app/config.json").json()["auth"] == "dev"
        r = requests.post("http://127.0.0.1:8003/v1/agents", headers=SUPERVISOR,
                          json={"user_id": "agent-7", "name": "王芳", "skills": ["complaints"], "max_open": 5})
        assert r.status_code == 201, r.text
        from crm_shared.bus import OutgoingMessage, connect
        bus = connect(f"sqlite:///{tmp_path}/data/bus.db", "crm")
        bus.publish([OutgoingMessage("kept-across-restarts", "lead.disqualified", b"{}")])
        bus.declare_consumer("audit", ["lead.disqualified"])
        bus.publish([OutgoingMessage("kept-across-restarts", "lead.disqualified", b"{}")])
    finally:
        _ctrl_c(p)
    log.close()
    out = (tmp_path / "run.log").read_text(errors="replace")
    assert "platform stopped" in out, out[-2000:]
    wait_until(lambda: not any(_listening(port) for port in [*PORTS.values(), GATEWAY]), timeout=10, message="ports freed")
    assert {f.name for f in (tmp_path / "data").glob("*.db")} >= {"leads.db", "sales.db", "service-desk.db",
                                                                   "notify.db", "bus.db"}
    # a second start finds the same data (migrations are not re-run destructively)
    log = open(tmp_path / "run2.log", "wb")
    p = _start(tmp_path / "data", log)
    try:
        wait_until(_ready, timeout=90, interval=0.5, message="ready again")
        assert bus.queue_depth("audit") == 1
        r = requests.get("http://127.0.0.1:8003/v1/agents/agent-7", headers=SUPERVISOR)
        assert r.status_code == 200 and r.json()["name"] == "王芳"
    finally:
        _ctrl_c(p)
        log.close()
