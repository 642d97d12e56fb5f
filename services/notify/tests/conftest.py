"""Fixtures of the notify tests: a migrated database with the app and runtime on a frozen clock,
real channels (an in-process SMTP server, a local HTTP receiver, the SMS file sink)."""
from __future__ import annotations

import email
import json
import socket
import threading
from datetime import datetime, timezone
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from crm_shared.bus import Delivery
from crm_shared.clock import FrozenClock
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.migrations import upgrade
from crm_shared.testing import demo_settings
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

from notify import jobs, models
from notify.app import create_app
from notify.service import SERVICE

# Tuesday 10 March 2026, 10:00 in Shanghai
T0 = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)


class NotifyEnv:
    def __init__(self, url: str, tmp_path, **extra):
        upgrade(SERVICE, url)
        self.sms_path = tmp_path / "sms.jsonl"
        cfg = {"SMS_URL": f"file://{self.sms_path}", "NOTIFY_RETRY_BASE_SECONDS": "60"}
        cfg.update({k: str(v) for k, v in extra.items()})
        self.clock = FrozenClock(T0)
        settings = demo_settings("notify", url, f"sqlite:///{tmp_path}/bus.db", "n", extra=cfg)
        self.app = create_app(settings, self.clock, testing=True)
        self.rt = runtime_of(self.app)
        self.client = self.app.test_client()
        self.dispatcher = Dispatcher(self.rt, SERVICE.handlers)

    # events ------------------------------------------------------------------------------------
    def envelope(self, event_type: str, payload: dict, **kw) -> Envelope:
        kw.setdefault("occurred_at", self.clock.now().isoformat())
        return Envelope(type=event_type, payload=payload, producer="test", **kw)

    def deliver(self, env: Envelope, attempts: int = 0):
        return self.dispatcher(Delivery(env.id, env.type, env.to_json().encode(), attempts))

    def publish(self, event_type: str, payload: dict, **kw) -> Envelope:
        env = self.envelope(event_type, payload, **kw)
        outcome = self.deliver(env)
        assert outcome[0].value == "ack", outcome
        return env

    def send_due(self):
        jobs.send_due(self.rt)

    # reading -----------------------------------------------------------------------------------
    def deliveries(self, **where):
        d = models.deliveries
        q = select(d).order_by(d.c.id)
        for k, v in where.items():
            q = q.where(d.c[k] == v)
        with self.rt.engine.connect() as c:
            return c.execute(q).all()

    def sms(self) -> list[dict]:
        if not self.sms_path.exists():
            return []
        return [json.loads(line) for line in self.sms_path.read_text(encoding="utf-8").splitlines()]

    # HTTP --------------------------------------------------------------------------------------
    def headers(self, user="u1", roles=("sales_rep",), team="east", lang="zh-CN"):
        return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user, list(roles), team, lang)}

    def admin(self):
        return self.headers("admin1", ("admin",))

    def recipient(self, user_id, **data):
        data.setdefault("email", f"{user_id}@example.com")
        r = self.client.put(f"/v1/recipients/{user_id}", json=data, headers=self.admin())
        assert r.status_code == 200, r.json
        return r.json

    def close(self):
        self.rt.close()


@pytest.fixture
def make_env(tmp_path):
    made = []

    def make(url=None, **extra):
        e = NotifyEnv(url or f"sqlite:///{tmp_path}/notify-{len(made)}.db", tmp_path, **extra)
        made.append(e)
        return e
    yield make
    for e in made:
        e.close()


@pytest.fixture
def env(make_env):
    return make_env()


@pytest.fixture
def env_db(make_env, database_url):
    """The same, on SQLite and on PostgreSQL."""
    return make_env(database_url)


# -- real channels ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailCatcher:
    def __init__(self):
        self.messages: list = []
        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                catcher.messages.append((list(envelope.rcpt_tos), msg))
                return "250 OK"

        self.handler = Handler()
        self.port = free_port()
        self.controller = None

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        from aiosmtpd.controller import Controller
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    m = MailCatcher()
    m.start()
    yield m
    m.stop()


class Receiver:
    """A local HTTP endpoint that records what it is sent and answers with the next status queued."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.body = b'{"errcode":0,"code":0}'
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rec.requests.append({"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(n)})
                status = rec.statuses.pop(0) if rec.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(rec.body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
