"""The sales service in one place: its tables, what it publishes and handles, its API and jobs."""
from pathlib import Path

from crm_shared.service import ServiceDefinition

from . import api, handlers, jobs, models

PUBLISHES = (
    "customer.created", "customer.updated", "customer.churned",
    "approval.requested", "approval.decided",
    "contract.signed", "contract.expiring", "contract.renewed", "contract.terminated",
    "order.submitted", "order.fulfilled",
    "payment.received", "payment.overdue",
)

SERVICE = ServiceDefinition(
    name="sales",
    title="Sales service",
    metadata=models.metadata,
    migrations_dir=Path(__file__).resolve().parent.parent / "migrations",
    publishes=PUBLISHES,
    handlers=handlers.HANDLERS,
    jobs=jobs.JOBS,
    blueprints=api.blueprints,
    port=8002,
    wsgi="sales.wsgi:app",
)
