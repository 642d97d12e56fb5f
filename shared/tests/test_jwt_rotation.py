"""HS256 rotation grace: CRM_JWT_PREVIOUS_SECRET is accepted for validation, never for signing."""
from datetime import datetime, timedelta, timezone

import pytest

from crm_shared.config import Settings
from crm_shared.testing import demo_settings, make_demo_service
from crm_shared.web import create_service_app
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

OLD = "o" * 40
NEW = "n" * 40


def make_client(tmp_path, **kw):
    d = make_demo_service("a", handles=())
    app = create_service_app(d, demo_settings("a", f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/bus.db", "w",
                                              **kw), testing=True)
    d.metadata.create_all(runtime_of(app).engine)
    return app.test_client()


def post(client, secret, **kw):
    t = dev_token(secret, "u1", "Li Lei", ["sales_rep"], "east", **kw)
    return client.post("/v1/notes", json={"text": "x"}, headers={"Authorization": f"Bearer {t}"})


def test_previous_secret_is_accepted_during_the_rotation(tmp_path):
    client = make_client(tmp_path, jwt_secret=NEW, jwt_previous_secret=OLD)
    assert post(client, NEW).status_code == 201
    assert post(client, OLD).status_code == 201          # a token issued before the switch
    r = post(client, "x" * 40)                           # neither secret
    assert r.status_code == 401 and "signature" in r.json["detail"].lower()
    # the grace covers the signature only: an expired token signed with the old secret stays expired
    past = datetime.now(timezone.utc) - timedelta(hours=2)
    r = post(client, OLD, ttl=timedelta(hours=1), now=past)
    assert r.status_code == 401 and "expired" in r.json["detail"]


def test_without_the_previous_secret_old_tokens_are_refused(tmp_path):
    client = make_client(tmp_path, jwt_secret=NEW)
    assert post(client, NEW).status_code == 201
    assert post(client, OLD).status_code == 401


def test_settings_read_it_and_production_refuses_a_weak_one():
    s = Settings.from_env("a", env={"CRM_JWT_SECRET": NEW, "CRM_JWT_PREVIOUS_SECRET": OLD})
    assert s.jwt_previous_secret == OLD and s.jwt_secret == NEW
    assert Settings.from_env("a", env={"CRM_JWT_PREVIOUS_SECRET": ""}).jwt_previous_secret is None
    prod = {"CRM_ENV": "production", "CRM_JWT_SECRET": NEW, "DATABASE_URL": "postgresql+psycopg://x@h/db"}
    Settings.from_env("a", env=prod).check()
    Settings.from_env("a", env={**prod, "CRM_JWT_PREVIOUS_SECRET": OLD}).check()
    with pytest.raises(RuntimeError, match="PREVIOUS"):
        Settings.from_env("a", env={**prod, "CRM_JWT_PREVIOUS_SECRET": "short"}).check()


def test_dev_tokens_are_signed_with_the_current_secret_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from crm_shared.cli import main
    monkeypatch.setenv("CRM_JWT_SECRET", NEW)
    monkeypatch.setenv("CRM_JWT_PREVIOUS_SECRET", OLD)
    out = CliRunner().invoke(main, ["token", "--user", "u1", "--name", "Li", "--role", "sales_rep"])
    assert out.exit_code == 0, out.output
    client = make_client(tmp_path, jwt_secret=NEW)  # no grace: only a NEW-signed token passes
    r = client.post("/v1/notes", json={"text": "x"}, headers={"Authorization": f"Bearer {out.output.strip()}"})
    assert r.status_code == 201
