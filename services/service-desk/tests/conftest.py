"""Fixtures of the service-desk tests: an app on SQLite and PostgreSQL (migrated), a frozen clock
(Monday 2026-11-23 10:00 in Shanghai), tokens, and event delivery through the real inbox."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

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
from service_desk.app import create_app
from service_desk.service import SERVICE

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 10, 0, tzinfo=SH).astimezone(timezone.utc)  # a Monday, inside working hours


class Desk:
    """The app under test with helpers to call it as somebody."""

    def __init__(self, app, clock):
        self.app, self.clock = app, clock
        self.client = app.test_client()
        self.rt = runtime_of(app)

    def headers(self, user="sup", roles=("service_supervisor",), team=None):
        return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user, list(roles), team)}

    def call(self, method, path, user="sup", roles=("service_supervisor",), team=None, **kw):
        return getattr(self.client, method)(path, headers=self.headers(user, roles, team), **kw)

    def agent(self, user_id, skills, max_open=5, active=True):
        r = self.call("post", "/v1/agents", json={"user_id": user_id, "skills": skills, "max_open": max_open,
                                                   "active": active})
        assert r.status_code == 201, r.json
        return r.json

    def ticket(self, customer="c1", type="complaint", priority="normal", user="sup", roles=("service_supervisor",),
               **kw):
        body = {"customer_id": customer, "type": type, "priority": priority, "subject": "It broke",
                "description": "details", "channel": "phone", **kw}
        r = self.call("post", "/v1/tickets", user=user, roles=roles, json=body)
        assert r.status_code == 201, r.json
        return r.json

    def status(self, tid, status, **kw):
        return self.call("post", f"/v1/tickets/{tid}/status", json={"status": status}, **kw)

    def get(self, tid, **kw):
        return self.call("get", f"/v1/tickets/{tid}", **kw)

    def deliver(self, event_type, payload, event_id=None):
        env = Envelope(type=event_type, payload=json.loads(json.dumps(payload, default=str)), producer="sales",
                       **({"id": event_id} if event_id else {}))
        return Dispatcher(self.rt, SERVICE.handlers)(Delivery(env.id, env.type, env.to_json().encode(), 0)), env

    def events(self, event_type=None):
        with self.rt.engine.connect() as c:
            rows = c.execute(select(self.rt.outbox.c.envelope).order_by(self.rt.outbox.c.id)).scalars().all()
        envs = [json.loads(r) for r in rows]
        return [e for e in envs if event_type is None or e["type"] == event_type]

    def customer(self, cid="c1", tier=None, owner="rep1", team="east", **kw):
        out, _ = self.deliver("customer.created", {"customer_id": cid, "name": f"Customer {cid}", "tier": tier,
                                                   "owner_id": owner, "team_id": team, **kw})
        assert out[0].name == "ACK"


def make_desk(url, tmp_path, at=START):
    upgrade(SERVICE, url)
    clock = FrozenClock(at)
    app = create_app(demo_settings("service-desk", url, f"sqlite:///{tmp_path}/bus.db", "sd"), clock=clock, testing=True)
    return Desk(app, clock)


@pytest.fixture
def desk(database_url, tmp_path):
    d = make_desk(database_url, tmp_path)
    yield d
    d.rt.close()


@pytest.fixture
def sqlite_desk(tmp_path):
    d = make_desk(f"sqlite:///{tmp_path}/sd.db", tmp_path)
    yield d
    d.rt.close()


@pytest.fixture
def new_desk(tmp_path):
    """A factory for a desk on a given database URL (closed afterwards)."""
    made = []

    def make(url, at=START):
        d = make_desk(url, tmp_path, at)
        made.append(d)
        return d
    yield make
    for d in made:
        d.rt.close()
