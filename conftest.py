"""Fixtures shared by every test folder: databases (SQLite file, fresh PostgreSQL database) and
buses (embedded SQLite bus, RabbitMQ with a namespace of its own), each removed afterwards.

With CRM_REQUIRE_SERVERS=1 (set by .ci/run) a missing PostgreSQL or RabbitMQ fails the run
instead of skipping the tests that need it."""
from __future__ import annotations

import uuid

import pytest

from crm_shared import testing

DEMO_DELAYS = (100, 200, 300)
CLEANUP = {"demo", "a", "b", "c", "leads", "sales", "service-desk", "notify"}


need = testing.need  # skip (fail in CI) when a server is not reachable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/service.db"
        return
    need("postgres")
    with testing.postgres_database() as url:
        yield url


@pytest.fixture
def pg_url():
    need("postgres")
    with testing.postgres_database() as url:
        yield url


class BusEnv:
    def __init__(self, kind: str, url: str, namespace: str):
        self.kind, self.url, self.namespace = kind, url, namespace
        self.services: set[str] = set()

    def connect(self):
        from crm_shared.bus import connect
        return connect(self.url, self.namespace, lease_seconds=3)


def _bus_env(kind, tmp_path):
    ns = "t" + uuid.uuid4().hex[:10]
    if kind == "embedded":
        return BusEnv(kind, f"sqlite:///{tmp_path}/bus.db", ns)
    need("rabbitmq")
    return BusEnv(kind, testing.AMQP_URL, ns)


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def bus_env(request, tmp_path):
    env = _bus_env(request.param, tmp_path)
    yield env
    if env.kind == "rabbitmq":
        testing.delete_amqp_namespace(env.namespace, sorted(env.services | CLEANUP), DEMO_DELAYS)


@pytest.fixture
def rabbit_env(tmp_path):
    env = _bus_env("rabbitmq", tmp_path)
    yield env
    testing.delete_amqp_namespace(env.namespace, sorted(env.services | CLEANUP), DEMO_DELAYS)


# -- the whole platform as processes --------------------------------------------------------------

PLATFORM_ENV = {"BUS_RETRY_DELAYS_MS": "200,500,1000", "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "1",
                "BUS_LEASE_SECONDS": "10", "OUTBOX_POLL_MS": "100"}


@pytest.fixture(params=["embedded", pytest.param("servers", marks=[pytest.mark.rabbitmq, pytest.mark.postgres])])
def platform_factory(request, tmp_path):
    """Builds `crm_shared.platform.Platform`s of the four services on free ports, on the embedded
    default (SQLite files, SQLite bus) or on the servers (a fresh PostgreSQL database per service,
    a RabbitMQ namespace of its own). `make(start=True, **kwargs)` returns it started and ready;
    everything is stopped and removed afterwards. Process logs are in tmp_path/logs."""
    import contextlib
    from crm_shared.platform import Platform
    from crm_shared import service as services
    stack = contextlib.ExitStack()
    made: list[Platform] = []
    names = services.installed()
    ns = "t" + uuid.uuid4().hex[:10]
    if request.param == "servers":
        need("postgres")
        need("rabbitmq")
        urls = {n: stack.enter_context(testing.postgres_database()) for n in names}
        bus_url = testing.AMQP_URL
    else:
        urls, bus_url = None, None

    def make(start: bool = True, env: dict | None = None, **kwargs) -> Platform:
        p = Platform(str(tmp_path / "data"), bus_url=bus_url, namespace=ns, database_urls=urls, ports="free",
                     env={**PLATFORM_ENV, **(env or {})}, log_dir=str(tmp_path / "logs"), **kwargs)
        made.append(p)
        if start:
            p.start(wait=True)
        return p

    make.backend = request.param
    yield make
    for p in made:
        p.stop()
    if request.param == "servers":
        testing.delete_amqp_namespace(ns, names, (200, 500, 1000))
    stack.close()
