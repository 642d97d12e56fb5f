"""What the service-desk service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed."""
from .domain import customers, sla, tickets
from .domain.common import utc_now


def _now(uow):
    return utc_now(uow.runtime.clock)


def customer_created(uow, env, payload):
    customers.apply_customer(uow.session, payload, _now(uow), created=True)


def customer_updated(uow, env, payload):
    customers.apply_customer(uow.session, payload, _now(uow), created=False)


def contract_changed(uow, env, payload):
    customers.apply_contract(uow.session, env.type, payload, _now(uow))


def order_fulfilled(uow, env, payload):
    """An onboarding ticket (training and handover), once per order: the ticket's unique
    order_id settles a repeated event even when it comes with a new event id."""
    from sqlalchemy import select
    from .models import tickets as t
    s = uow.session
    if s.execute(select(t.c.id).where(t.c.order_id == payload["order_id"])).first() is not None:
        return
    products = ", ".join(p.get("name") or p["sku"] for p in payload.get("products") or [])
    description = "Training and handover after the order was fulfilled."
    if products:
        description += f" Products: {products}."
    if payload.get("note"):
        description += f" Note: {payload['note']}"
    tickets.create(uow, sla.load_calendar(s), _now(uow), {
        "customer_id": payload["customer_id"], "type": "onboarding", "priority": "normal",
        "subject": f"Onboarding for order {payload['order_id']}", "description": description[:5000],
        "channel": "api", "contact": None}, created_by=None, order_id=payload["order_id"])


HANDLERS: dict = {
    "customer.created": customer_created,
    "customer.updated": customer_updated,
    "contract.signed": contract_changed,
    "contract.expiring": contract_changed,
    "contract.renewed": contract_changed,
    "contract.terminated": contract_changed,
    "order.fulfilled": order_fulfilled,
}
