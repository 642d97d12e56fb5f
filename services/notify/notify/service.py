"""The notify service in one place: its tables, what it publishes and handles, its API and jobs."""
from pathlib import Path

from crm_shared.service import ServiceDefinition

from . import api, handlers, jobs, models

SERVICE = ServiceDefinition(
    name="notify",
    title="Notify service",
    metadata=models.metadata,
    migrations_dir=Path(__file__).resolve().parent.parent / "migrations",
    publishes=(),
    handlers=handlers.HANDLERS,
    jobs=jobs.JOBS,
    blueprints=api.blueprints,
    port=8004,
    wsgi="notify.wsgi:app",
)
