"""The service-desk service in one place: its tables, what it publishes and handles, its API and jobs."""
from pathlib import Path

from crm_shared.service import ServiceDefinition

from . import api, handlers, jobs, models

SERVICE = ServiceDefinition(
    name="service-desk",
    title="Service-desk service",
    metadata=models.metadata,
    migrations_dir=Path(__file__).resolve().parent.parent / "migrations",
    publishes=("ticket.created", "ticket.assigned", "ticket.resolved", "ticket.sla_warning", "ticket.sla_breached",
               "ticket.escalated", "csat.submitted", "referral.spotted"),
    handlers=handlers.HANDLERS,
    jobs=jobs.JOBS,
    blueprints=api.blueprints,
    port=8003,
    wsgi="service_desk.wsgi:app",
)
