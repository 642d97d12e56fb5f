"""Test helpers for every service's tests: a tiny demo service (one table, one endpoint, one
handler) that exercises the whole machinery, fresh PostgreSQL databases, bus namespaces that are
removed afterwards, and `wait_until` instead of sleeps."""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import Column, DateTime, Integer, String, Table, func, select

from . import db
from .config import Settings
from .fields import Text
from .service import Job, ServiceDefinition
from .web.auth import current_user, public, require_roles
from .web.errors import NotFound

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


SERVERS = {"postgres": ("127.0.0.1", 5432), "rabbitmq": ("127.0.0.1", 5672)}


def server_up(server: str) -> bool:
    import socket
    try:
        with socket.create_connection(SERVERS[server], timeout=1):
            return True
    except OSError:
        return False


def need(server: str) -> None:
    """Skip the calling test when `server` (postgres, rabbitmq) is not reachable; with
    CRM_REQUIRE_SERVERS=1 (CI) fail it instead, so a stopped server never passes as a skip."""
    import pytest
    if not server_up(server):
        host, port = SERVERS[server]
        msg = f"{server} is not reachable on {host}:{port}"
        if os.environ.get("CRM_REQUIRE_SERVERS") == "1":
            pytest.fail(msg + " (CRM_REQUIRE_SERVERS=1: start it, see the README)")
        pytest.skip(msg)


@contextlib.contextmanager
def postgres_database(prefix: str = "crm_test"):
    """A fresh PostgreSQL database, dropped afterwards. Yields its SQLAlchemy URL."""
    import psycopg
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_amqp_namespace(namespace: str, services: list[str], delays_ms=()) -> None:
    """Remove the exchange and queues a test declared on RabbitMQ."""
    from kombu import Connection
    from .bus import Topology
    t = Topology(namespace)
    with Connection(AMQP_URL) as conn:
        ch = conn.channel()
        for s in services:
            for q in [t.queue(s), t.dlq(s)] + [t.retry_queue(s, d) for d in delays_ms]:
                ch.queue_delete(q)
        ch.exchange_delete(t.exchange)


# -- the demo service -------------------------------------------------------------------------------

def make_demo_service(name: str = "demo", handles: tuple[str, ...] = ("lead.created",)) -> ServiceDefinition:
    md = db.new_metadata()
    db.messaging_tables(md)
    notes = Table("notes", md,
                  Column("id", Integer, primary_key=True),
                  Column("text", String(200), nullable=False),
                  Column("author_id", String(64), nullable=False),
                  Column("priority", Integer, nullable=False),
                  Column("created_at", DateTime(timezone=True), nullable=False))
    applied = Table("applied", md,  # no unique key on purpose: a duplicate effect would show as two rows
                    Column("seq", Integer, primary_key=True),
                    Column("event_id", String(36), nullable=False),
                    Column("event_type", String(100), nullable=False),
                    Column("correlation_id", String(128)))
    switches = Table("switches", md, Column("name", String(50), primary_key=True), Column("on", Integer, nullable=False))

    def handle(uow, env, payload):
        if payload.get("name") == "poison":
            on = uow.session.execute(select(switches.c.on).where(switches.c.name == "fail")).scalar()
            if on:
                raise RuntimeError("the demo handler was told to fail on this event")
        uow.session.execute(applied.insert().values(event_id=env.id, event_type=env.type,
                                                    correlation_id=env.correlation_id))

    blp = Blueprint("notes", __name__, url_prefix="/v1/notes", description="Demo notes")

    class NoteIn(Schema):
        text = Text(required=True, max_length=200, min_length=1)
        priority = fields.Integer(load_default=0, strict=True)
        tags = fields.List(Text(max_length=20), load_default=list)

    class NoteOut(Schema):
        id = fields.Integer()
        text = fields.String()
        priority = fields.Integer()
        author_id = fields.String()

    @blp.route("")
    class Notes(MethodView):
        @require_roles("sales_rep", "sales_manager")
        @blp.arguments(NoteIn)
        @blp.response(201, NoteOut)
        def post(self, data):
            from .web.app import runtime_of, unit_of_work
            from flask import current_app
            uow = unit_of_work()
            rt = runtime_of(current_app)
            nid = uow.session.execute(notes.insert().values(
                text=data["text"], priority=data["priority"], author_id=current_user().id,
                created_at=rt.clock.now())).inserted_primary_key[0]
            uow.emit("lead.created", {"lead_id": str(nid), "status": "new", "name": data["text"]},
                     aggregate_type="note", aggregate_id=nid)
            uow.commit()
            return {"id": nid, "text": data["text"], "priority": data["priority"], "author_id": current_user().id}

    @blp.route("/count")
    class Count(MethodView):
        @public
        @blp.response(200, Schema.from_dict({"count": fields.Integer()})())
        def get(self):
            from .web.app import unit_of_work
            return {"count": unit_of_work().session.execute(select(func.count()).select_from(notes)).scalar_one()}

    @blp.route("/<int:note_id>")
    class Note(MethodView):
        @blp.response(200, NoteOut)
        def get(self, note_id):
            from .web.app import unit_of_work
            row = unit_of_work().session.execute(select(notes).where(notes.c.id == note_id)).first()
            if row is None or row.author_id != current_user().id:
                raise NotFound(f"No note {note_id}.")
            return row._asdict()

    ticks = Table("ticks", md, Column("n", Integer, primary_key=True))

    def tick(rt):
        with rt.engine.begin() as c:
            c.execute(ticks.insert().values())

    return ServiceDefinition(name=name, title=f"Demo {name}", metadata=md, migrations_dir=Path("."),
                             publishes=("lead.created",), handlers={t: handle for t in handles},
                             jobs=(Job("tick", tick, every_seconds=0.2),), blueprints=lambda: [blp], port=0)


def demo_counts(engine, md) -> dict[str, int]:
    applied = md.tables["applied"]
    with engine.connect() as c:
        return dict(c.execute(select(applied.c.event_id, func.count()).group_by(applied.c.event_id)).all())


def demo_settings(name: str, database_url: str, bus_url: str, namespace: str, **kw) -> Settings:
    base = dict(service=name, database_url=database_url, bus_url=bus_url, bus_namespace=namespace,
                retry_delays_ms=(100, 200, 300), lease_seconds=3, relay_poll_ms=50)
    base.update(kw)
    return Settings(**base)


def main(argv=None) -> None:
    """`python -m crm_shared.testing worker NAME DB_URL BUS_URL NAMESPACE`: a demo worker process."""
    import argparse
    from .worker import main as run
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["worker"])
    p.add_argument("name")
    p.add_argument("database_url")
    p.add_argument("bus_url")
    p.add_argument("namespace")
    p.add_argument("--handles", default="lead.created")
    a = p.parse_args(argv)
    d = make_demo_service(a.name, tuple(h for h in a.handles.split(",") if h))
    engine = db.make_engine(a.database_url)
    d.metadata.create_all(engine)
    engine.dispose()
    run(d, demo_settings(a.name, a.database_url, a.bus_url, a.namespace))


if __name__ == "__main__":
    main()


def migration_drift(definition: ServiceDefinition, database_url: str) -> list:
    """Upgrade a fresh database to head, then compare it with the service's models: [] means the
    migrations create exactly what the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from .migrations import upgrade
    upgrade(definition, database_url)
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:
            mc = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(mc, definition.metadata)
    finally:
        engine.dispose()
