"""Fixtures for the sales tests: an app on a migrated database (SQLite and PostgreSQL) with a
frozen clock."""
from __future__ import annotations

import pytest

from crm_shared.clock import FrozenClock
from crm_shared.web.app import runtime_of

from sales.testing import START, Api, make_app


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def api(database_url, tmp_path, clock):
    app = make_app(database_url, tmp_path, clock)
    yield Api(app)
    runtime_of(app).close()


@pytest.fixture
def sqlite_api(tmp_path, clock):
    app = make_app(f"sqlite:///{tmp_path}/sales.db", tmp_path, clock)
    yield Api(app)
    runtime_of(app).close()


