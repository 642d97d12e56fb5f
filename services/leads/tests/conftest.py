"""Fixtures of the leads tests: an app (migrated database, frozen clock) on SQLite and PostgreSQL,
tokens per role, and helpers to read the outbox."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from crm_shared.clock import FrozenClock
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.migrations import upgrade
from crm_shared.testing import demo_settings
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token
from leads.app import create_app
from leads.service import SERVICE

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in Shanghai


class Env:
    def __init__(self, app, clock):
        self.app, self.clock = app, clock
        self.client = app.test_client()
        self.rt = runtime_of(app)

    def h(self, user="rep1", roles=("sales_rep",), team="east", name=None):
        # tokens are checked against the real time, so they are made with it (the app's clock is frozen)
        tok = dev_token(DEV_JWT_SECRET, user, name or user.upper(), list(roles), team)
        return {"Authorization": f"Bearer {tok}"}

    def rep(self, user="rep1", team="east"):
        return self.h(user, ("sales_rep",), team)

    def manager(self, user="mgr1", team="east"):
        return self.h(user, ("sales_manager",), team)

    def admin(self, user="admin"):
        return self.h(user, ("admin",), None)

    def post(self, url, body=None, headers=None, **kw):
        return self.client.post(url, json=body, headers=headers or self.admin(), **kw)

    def events(self, event_type=None) -> list[dict]:
        with self.rt.engine.connect() as c:
            rows = c.execute(select(self.rt.outbox.c.envelope).order_by(self.rt.outbox.c.id)).scalars().all()
        envs = [json.loads(r) for r in rows]
        return [e for e in envs if event_type is None or e["type"] == event_type]

    def team(self, members, strategy="round_robin", code="east", name="East", rule=None, priority=10):
        r = self.post("/v1/teams", {"name": name, "code": code, "strategy": strategy, "members": members})
        assert r.status_code == 201, r.json
        team_id = int(r.json["id"])
        r = self.post("/v1/routing-rules", {"priority": priority, "conditions": rule or {}, "team_id": team_id})
        assert r.status_code == 201, r.json
        return team_id


def make_env(url, tmp_path, **settings):
    upgrade(SERVICE, url)
    clock = FrozenClock(T0)
    app = create_app(demo_settings("leads", url, f"sqlite:///{tmp_path}/bus.db", "t", **settings), clock=clock,
                     testing=True)
    return Env(app, clock)


@pytest.fixture
def env(database_url, tmp_path):
    e = make_env(database_url, tmp_path)
    yield e
    e.rt.close()


@pytest.fixture
def lite(tmp_path):
    """SQLite only: for rules whose behaviour does not depend on the database."""
    e = make_env(f"sqlite:///{tmp_path}/leads.db", tmp_path)
    yield e
    e.rt.close()


@pytest.fixture
def pg(pg_url, tmp_path):
    e = make_env(pg_url, tmp_path)
    yield e
    e.rt.close()
