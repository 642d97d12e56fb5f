"""The processes `crm run` (crm_shared.platform) starts for notify: a worker that consumes and
relays (`crm worker notify --parts consume,relay`) and a process of its own for the scheduled jobs
(`--parts schedule`), as docker-compose.yml and deploy/k8s run them. An event reaches the rep's
inbox through the first and the rep's email through the second; neither does the other's part."""
from __future__ import annotations

import email
import signal
import socket
import threading
from email import policy

import pytest
import requests
from sqlalchemy import create_engine, text

from crm_shared.bus import OutgoingMessage, connect
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events import Envelope
from crm_shared.platform import JOBS_APART, Platform
from crm_shared.testing import wait_until
from crm_shared.web.auth import dev_token

ADMIN = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "admin1", "Admin", ["admin"])}


class Sink:
    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]


def _platform(tmp_path, sink, **kw):
    return Platform(str(tmp_path / "data"), names=["notify"], ports="free", log_dir=str(tmp_path / "logs"),
                    env={"SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "LOG_LEVEL": "WARNING"}, **kw)


def _assigned(p, lead_id: str) -> str:
    env = Envelope(type="lead.assigned", producer="leads",
                   payload={"lead_id": lead_id, "owner_id": "rep1", "name": f"Lead {lead_id}", "reason": "auto"})
    connect(p.bus_url, p.namespace).publish([OutgoingMessage(env.id, env.type, env.to_json().encode())])
    return env.id


def _count(url, sql) -> int:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(text(sql)).scalar()
    finally:
        eng.dispose()


def test_notify_runs_its_jobs_in_a_process_of_their_own(tmp_path):
    assert "notify" in JOBS_APART
    sink = Sink()
    p = _platform(tmp_path, sink)
    try:
        p.start(wait=True, timeout=120)
        parts = {part: proc for name, part, proc in p.processes()}
        assert set(parts) == {"web", "worker", "jobs"}
        assert cmdline(parts["worker"].pid)[-4:] == ["worker", "notify", "--parts", "consume,relay"]
        assert cmdline(parts["jobs"].pid)[-4:] == ["worker", "notify", "--parts", "schedule"]
        r = requests.put(p.url("notify") + "/v1/recipients/rep1", headers=ADMIN,
                         json={"name": "Rep 1", "email": "rep1@example.com", "roles": ["sales_rep"]})
        assert r.status_code == 200, r.text
        url = p.services["notify"].database_url
        # the jobs process stopped: the consumer still writes the inbox item, the email waits
        assert p._signal(p.services["notify"].jobs, signal.SIGTERM, 30) == 0
        _assigned(p, "L1")
        wait_until(lambda: _count(url, "SELECT count(*) FROM inbox_items") == 1, timeout=30, message="inbox item")
        threading.Event().wait(2.5)  # more than two ticks of the dispatch job, had it run
        assert sink.messages == []
        assert _count(url, "SELECT count(*) FROM deliveries WHERE channel = 'email' AND status = 'pending'") == 1
        # the jobs process back (and the worker stopped): the email goes, nothing is consumed
        p.services["notify"].jobs = p._spawn("notify", "jobs", list(parts["jobs"].args))
        assert p._signal(p.services["notify"].worker, signal.SIGTERM, 30) == 0
        wait_until(lambda: len(sink.messages) == 1, timeout=30, message="the email, sent by the jobs process")
        assert sink.messages[0]["To"] == "rep1@example.com"
        _assigned(p, "L2")
        threading.Event().wait(2.5)
        assert _count(url, "SELECT count(*) FROM inbox_items") == 1  # nobody consumes
        assert connect(p.bus_url, p.namespace).queue_depth("notify") == 1
        # kill_worker / start_worker act on both processes
        p.kill_worker("notify")
        assert p.services["notify"].jobs.poll() is not None
        p.start_worker("notify")
        wait_until(lambda: _count(url, "SELECT count(*) FROM inbox_items") == 2 and len(sink.messages) == 2,
                   timeout=30, message="the second lead's inbox item and email")
        assert not p.exited()
    finally:
        p.stop()
        sink.stop()


def test_the_layout_before_one_worker_process(tmp_path):
    sink = Sink()
    p = _platform(tmp_path, sink, jobs_apart=())
    try:
        p.start(wait=True, timeout=120)
        parts = {part: proc for name, part, proc in p.processes()}
        assert set(parts) == {"web", "worker"}
        assert cmdline(parts["worker"].pid)[-2:] == ["worker", "notify"]
        r = requests.put(p.url("notify") + "/v1/recipients/rep1", headers=ADMIN,
                         json={"name": "Rep 1", "email": "rep1@example.com", "roles": ["sales_rep"]})
        assert r.status_code == 200, r.text
        _assigned(p, "L1")
        wait_until(lambda: len(sink.messages) == 1, timeout=30, message="the email")
    finally:
        p.stop()
        sink.stop()


@pytest.mark.parametrize("bad", ["jobs", "consume,,relay"])
def test_a_bad_worker_parts_setting_stops_the_worker_with_a_clear_error(tmp_path, bad):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "crm_shared.cli", "worker", "notify"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "WORKER_PARTS": bad, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
                            "BUS_URL": f"sqlite:///{tmp_path}/bus.db"}, timeout=60)
    assert r.returncode == 2 and "consume, relay, schedule" in r.stderr, r.stderr
