"""A service's live parts, built once per process: settings, engine, sessions, bus, clock."""
from __future__ import annotations

import threading
from functools import cached_property

from sqlalchemy import Table

from . import db
from .bus import Bus, connect
from .clock import Clock, clock_from_settings
from .config import Settings
from .service import ServiceDefinition


class Runtime:
    def __init__(self, definition: ServiceDefinition, settings: Settings, clock: Clock | None = None):
        settings.check()
        self.definition = definition
        self.settings = settings
        self.name = definition.name
        self.clock = clock or clock_from_settings(settings)
        self.engine = db.make_engine(settings.database_url)
        self.session_factory = db.make_session_factory(self.engine)
        self.outbox: Table = definition.metadata.tables["outbox"]
        self.inbox: Table = definition.metadata.tables["processed_events"]
        self.outbox_wake = threading.Event()  # set when this process commits outbox rows

    @property
    def notify_channel(self) -> str:
        return "crm_outbox_" + self.name.replace("-", "_")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @cached_property
    def bus(self) -> Bus:
        s = self.settings
        return connect(s.bus_url, s.bus_namespace, lease_seconds=s.lease_seconds, delivery_limit=s.delivery_limit,
                       poll_interval=s.bus_poll_ms / 1000)

    def uow(self):
        from .uow import UnitOfWork
        return UnitOfWork(self)

    def close(self):
        if "bus" in self.__dict__:
            self.bus.close()
        self.engine.dispose()
