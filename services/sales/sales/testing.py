"""Test helpers for the sales service (used by services/sales/tests): the API as a given user, the
outbox as a list of events, events fed to the handlers, and a small cast of users."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from crm_shared.bus import Delivery
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.migrations import upgrade
from crm_shared.testing import demo_settings
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

from .app import create_app
from .service import SERVICE

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


class Api:
    """The Flask test client with a user per call: api.post(path, json, as_=("u1", roles, team))."""

    def __init__(self, app):
        self.app, self.client = app, app.test_client()

    def headers(self, who):
        user, roles, team = who
        return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user, list(roles), team)}

    def get(self, path, who, **kw):
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(self, path, who, json=None, **kw):
        return self.client.post(path, json=json if json is not None else {}, headers=self.headers(who), **kw)

    def patch(self, path, who, json, **kw):
        return self.client.patch(path, json=json, headers=self.headers(who), **kw)

    def put(self, path, who, json, **kw):
        return self.client.put(path, json=json, headers=self.headers(who), **kw)

    @property
    def runtime(self):
        return runtime_of(self.app)

    def events(self, event_type=None) -> list[dict]:
        rt = self.runtime
        with rt.engine.connect() as c:
            rows = c.execute(select(rt.outbox.c.envelope).order_by(rt.outbox.c.id)).scalars().all()
        envs = [json.loads(r) for r in rows]
        return [e for e in envs if event_type is None or e["type"] == event_type]

    def deliver(self, event_type: str, payload: dict, event_id: str | None = None, occurred_at: str | None = None):
        extra = {"id": event_id} if event_id else {}
        if occurred_at:
            extra["occurred_at"] = occurred_at
        env = Envelope(type=event_type, payload=payload, producer="leads", **extra)
        d = Dispatcher(self.runtime, SERVICE.handlers)
        return d(Delivery(env.id, env.type, env.to_json().encode(), 0))


# the cast
REP = ("rep1", ("sales_rep",), "east")
REP2 = ("rep2", ("sales_rep",), "east")
WEST_REP = ("rep9", ("sales_rep",), "west")
MGR = ("mgr1", ("sales_manager",), "east")
MGR2 = ("mgr2", ("sales_manager",), "east")
WEST_MGR = ("mgr9", ("sales_manager",), "west")
GM = ("gm1", ("general_manager",), None)
FIN = ("fin1", ("finance",), None)
OPS = ("ops1", ("ops",), None)
ADMIN = ("admin1", ("admin",), None)


def make_app(database_url, tmp_path, clock):
    upgrade(SERVICE, database_url)
    settings = demo_settings("sales", database_url, f"sqlite:///{tmp_path}/bus.db", "t")
    return create_app(settings, clock=clock, testing=True)


def converted(lead_id="L1", owner="rep1", team="east", **kw) -> dict:
    p = {"lead_id": lead_id, "owner_id": owner, "team_id": team, "name": "Wang Fang", "company": "Acme Ltd",
         "campaign_id": "C7", "province": "Zhejiang", "city": "Hangzhou", "industry": "retail",
         "contact": {"name": "Wang Fang", "phone": "+86 138 0013 8000", "email": "wang@acme.example"},
         "opportunity_name": "Acme CRM seats", "expected_amount": "120000.00", "currency": "CNY",
         "birthday": "1985-06-01", "language": "zh-CN"}
    p.update(kw)
    return p


def seed_products(api):
    for sku, price, cur in (("SEAT", "1000.00", "CNY"), ("SETUP", "5000.00", "CNY"), ("YEN", "1500", "JPY")):
        r = api.post("/v1/products", ADMIN, {"sku": sku, "name": sku.title(), "list_price": price, "currency": cur})
        assert r.status_code == 201, r.json


def opportunity(api, lead_id="L1", owner="rep1", team="east", **kw) -> dict:
    api.deliver("lead.converted", converted(lead_id, owner, team, **kw))
    opps = api.get(f"/v1/opportunities?lead_id={lead_id}", ADMIN).json
    assert len(opps) == 1
    return opps[0]


def quote(api, opp_id, discount="0", who=REP, qty="10", currency="CNY", sku="SEAT") -> dict:
    r = api.post("/v1/quotes", who, {"opportunity_id": opp_id, "currency": currency,
                                     "lines": [{"sku": sku, "quantity": qty, "discount_pct": discount}]})
    assert r.status_code == 201, r.json
    return r.json
