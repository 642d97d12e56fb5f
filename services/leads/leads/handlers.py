"""What the leads service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed, so a redelivery has no
second effect."""
from datetime import datetime, timezone

from .domain import customers


def _now(env) -> datetime:
    # the event's own time keeps a replay deterministic; fall back to now when it is unreadable
    try:
        at = datetime.fromisoformat(env.occurred_at)
        return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return datetime.now(timezone.utc)


def customer_created(uow, env, payload):
    customers.learn_customer(uow, payload, _now(env))


def contract_signed(uow, env, payload):
    customers.contract_signed(uow, payload, _now(env))


def customer_churned(uow, env, payload):
    customers.customer_churned(uow, payload, _now(env))


def referral_spotted(uow, env, payload):
    customers.referral_spotted(uow, payload, _now(env))


HANDLERS: dict = {
    "customer.created": customer_created,
    "customer.updated": customer_created,
    "contract.signed": contract_signed,
    "customer.churned": customer_churned,
    "referral.spotted": referral_spotted,
}
