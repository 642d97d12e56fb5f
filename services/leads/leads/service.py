"""The leads service in one place: its tables, what it publishes and handles, its API and jobs."""
from pathlib import Path

from crm_shared.service import ServiceDefinition

from . import api, handlers, jobs, models

SERVICE = ServiceDefinition(
    name="leads",
    title="Leads service",
    metadata=models.metadata,
    migrations_dir=Path(__file__).resolve().parent.parent / "migrations",
    publishes=("lead.created", "lead.assigned", "lead.duplicate_hit", "lead.followed_up", "lead.recycle_warning",
               "lead.recycled", "lead.converted", "lead.disqualified"),
    handlers=handlers.HANDLERS,
    jobs=jobs.JOBS,
    blueprints=api.blueprints,
    port=8001,
    wsgi="leads.wsgi:app",
)
