"""What every installed service must satisfy, whatever it does: its migrations build exactly its
models on SQLite and PostgreSQL, its event handlers and publications agree with the catalogue, its
app serves the ops endpoints, and its OpenAPI document matches the one kept in the repository."""
import json
import os
from pathlib import Path

import pytest

from crm_shared import service as services
from crm_shared.events import REGISTRY
from crm_shared.events.catalogue import CONSUMERS, PRODUCERS
from crm_shared.migrations import downgrade, upgrade
from crm_shared.testing import demo_settings, migration_drift

NAMES = ["leads", "sales", "service-desk", "notify"]
ROOT = Path(__file__).resolve().parent.parent


def test_all_four_services_are_installed():
    assert services.installed() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_migrations_match_models_and_downgrade(name, database_url):
    d = services.load(name)
    assert migration_drift(d, database_url) == []
    downgrade(d, database_url, "base")
    upgrade(d, database_url)


@pytest.mark.parametrize("name", NAMES)
def test_handlers_and_publications_agree_with_the_catalogue(name):
    d = services.load(name)
    for event_type in d.handlers:
        assert name in CONSUMERS[event_type], f"{name} handles {event_type} but the catalogue does not bind it"
    for event_type in d.publishes:
        REGISTRY.latest(event_type)
        assert PRODUCERS[event_type] == name, f"{event_type} is produced by {PRODUCERS[event_type]}, not {name}"
    for event_type, consumers in CONSUMERS.items():
        if name in consumers:  # a bound type nobody handles fills the queue and is thrown away
            assert event_type in d.handlers, f"the catalogue binds {event_type} to {name}, which has no handler"


@pytest.mark.parametrize("name", NAMES)
def test_ops_endpoints_and_openapi_contract(name, tmp_path):
    d = services.load(name)
    url = f"sqlite:///{tmp_path}/{name}.db"
    upgrade(d, url)
    app = __import__(d.wsgi.split(":")[0].rsplit(".", 1)[0] + ".app", fromlist=["create_app"]).create_app(
        demo_settings(name, url, f"sqlite:///{tmp_path}/bus.db", "svc"), testing=True)
    c = app.test_client()
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 200
    assert c.get("/metrics").status_code == 200
    spec = c.get("/openapi.json").json
    contract = ROOT / "services" / name / "openapi.json"
    current = json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_OPENAPI") == "1":
        contract.write_text(current, encoding="utf-8")
    assert contract.exists(), f"{contract} missing: run `UPDATE_OPENAPI=1 make test` and commit it"
    assert contract.read_text(encoding="utf-8") == current, \
        f"the {name} API changed: review, then `UPDATE_OPENAPI=1 make test` and commit services/{name}/openapi.json"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "parameters":  # path-level parameters, not an operation
                continue
            if path.startswith("/v1/") and not op.get("security") == []:
                assert "401" in op["responses"] or spec.get("security"), f"{method} {path} documents no auth"
