"""What a service declares about itself, in one visible place: its tables, the events it publishes
and handles, its HTTP blueprints and its scheduled jobs. `crm` finds services through the
`crm.services` entry point, so this package never imports a service."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import MetaData

# handler(uow, envelope, payload) -> None ; payload is the validated, typed payload
Handler = Callable[..., None]


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable  # run(runtime) -> None
    every_seconds: float | None = None
    cron: str | None = None


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    metadata: MetaData
    migrations_dir: Path
    publishes: tuple[str, ...] = ()
    handlers: dict[str, Handler] = field(default_factory=dict)
    jobs: tuple[Job, ...] = ()
    blueprints: Callable[[], list] = lambda: []
    version: str = "0.1.0"
    port: int = 8000
    wsgi: str = ""  # gunicorn target, e.g. "leads.wsgi:app"


def load(name: str) -> ServiceDefinition:
    from importlib.metadata import entry_points
    for ep in entry_points(group="crm.services"):
        if ep.name == name:
            return ep.load()
    raise LookupError(f"no service called {name!r} is installed")


def installed() -> list[str]:
    from importlib.metadata import entry_points
    return sorted(ep.name for ep in entry_points(group="crm.services"))
