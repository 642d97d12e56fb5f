"""Helpers of the hostile-input tests (tests/test_hostile_*.py): each service's real Flask app on a
fresh SQLite database, tokens for any user and role, the operations of its OpenAPI document, and
the results file another tool renders into docs/RELIABILITY.md."""
from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

from crm_shared import service as services
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.migrations import upgrade
from crm_shared.testing import demo_settings
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

NAMES = ["leads", "sales", "service-desk", "notify"]
ROOT = Path(__file__).resolve().parent.parent


def make_app(name: str, tmp_path: Path, clock=None, url: str | None = None, **settings):
    """The service's app exactly as `crm web` builds it, on SQLite (or `url`) and the embedded bus."""
    d = services.load(name)
    url = url or f"sqlite:///{tmp_path}/{name}.db"
    upgrade(d, url)
    module = importlib.import_module(d.wsgi.split(":")[0].rsplit(".", 1)[0] + ".app")
    return module.create_app(demo_settings(name, url, f"sqlite:///{tmp_path}/bus-{name}.db", "hostile", **settings),
                             clock=clock, testing=True)


def close(app) -> None:
    runtime_of(app).close()


def token(user: str = "admin", roles=("admin",), team: str | None = None, secret: str = DEV_JWT_SECRET, **kw) -> str:
    return dev_token(secret, user, user.upper(), list(roles), team, **kw)


def auth(user: str = "admin", roles=("admin",), team: str | None = None) -> dict:
    return {"Authorization": "Bearer " + token(user, roles, team)}


def spec(name: str) -> dict:
    """The committed contract (tests/test_services.py keeps it equal to what the app serves)."""
    return json.loads((ROOT / "services" / name / "openapi.json").read_text(encoding="utf-8"))


def operations(name: str):
    """(METHOD, openapi path, operation) for every operation of the service's API."""
    for path, ops in spec(name)["paths"].items():
        for method, op in ops.items():
            if method != "parameters":
                yield method.upper(), path, op


def is_public(op: dict) -> bool:
    return op.get("security") == []


def fill(path: str, value="1") -> str:
    return re.sub(r"\{[^}]+\}", str(value), path)


def record(section: str, service: str, figures: dict) -> None:
    """Merge figures into $CRM_RESULTS_DIR/hostile.json (written only when the variable is set)."""
    out = os.environ.get("CRM_RESULTS_DIR")
    if not out:
        return
    path = Path(out) / "hostile.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(section, {})[service] = figures
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def deliver(app, name: str, event_type: str, payload: dict, producer: str = "test") -> None:
    """Feed one event to the service's handlers through its real inbox (as its worker would)."""
    from crm_shared.bus import Delivery
    from crm_shared.events import Envelope
    from crm_shared.inbox import Dispatcher
    env = Envelope(type=event_type, payload=json.loads(json.dumps(payload, default=str)), producer=producer)
    outcome = Dispatcher(runtime_of(app), services.load(name).handlers)(
        Delivery(env.id, env.type, env.to_json().encode(), 0))
    assert outcome[0].value == "ack", outcome


class Client:
    """The app's test client, called as somebody: c.post(path, who, json)."""

    def __init__(self, app):
        self.app, self.client = app, app.test_client()

    def call(self, method: str, path: str, who: tuple, json=None, **kw):
        user, roles, team = who
        if json is None and method in ("POST", "PUT", "PATCH"):
            json = {}
        return self.client.open(path, method=method, json=json, headers=auth(user, roles, team), **kw)

    def get(self, path, who, **kw):
        return self.call("GET", path, who, **kw)

    def post(self, path, who, json=None, **kw):
        return self.call("POST", path, who, json, **kw)

    def ok(self, method, path, who, json=None, status=(200, 201)):
        r = self.call(method, path, who, json)
        assert r.status_code in ((status,) if isinstance(status, int) else status), (method, path, r.get_json())
        return r.get_json()
