"""End to end over the bus (embedded and RabbitMQ): sales' events reach the service-desk worker,
which builds the read model and opens the onboarding ticket; its own events leave through the
outbox relay."""
from sqlalchemy import func, select

from crm_shared.bus import OutgoingMessage
from crm_shared.events import Envelope
from crm_shared.migrations import upgrade
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, wait_until
from crm_shared.worker import Worker
from service_desk.models import customers, tickets
from service_desk.service import SERVICE


def test_worker_consumes_sales_events_and_relays_its_own(bus_env, tmp_path):
    url = f"sqlite:///{tmp_path}/sd.db"
    upgrade(SERVICE, url)
    rt = Runtime(SERVICE, demo_settings("service-desk", url, bus_env.url, bus_env.namespace))
    bus_env.services |= {"service-desk", "notify", "sales", "leads"}
    w = Worker(rt, schedule=False).start()
    try:
        publisher = bus_env.connect()
        msgs = [Envelope(type="customer.created", producer="sales",
                         payload={"customer_id": "c9", "name": "Nine", "tier": "gold", "owner_id": "rep1"}),
                Envelope(type="order.fulfilled", producer="sales",
                         payload={"order_id": "o9", "contract_id": "k9", "customer_id": "c9"})]
        for env in msgs:  # in order: the read model is there when the ticket opens
            publisher.publish([OutgoingMessage(env.id, env.type, env.to_json().encode())])
            wait_until(lambda: rt.bus.queue_depth("service-desk") == 0, message="delivered")

        def opened():
            with rt.engine.connect() as c:
                return c.execute(select(tickets.c.tier, tickets.c.queue).where(tickets.c.order_id == "o9")).first()
        assert tuple(wait_until(opened, message="onboarding ticket")) == ("gold", "onboarding")

        def relayed():
            with rt.engine.connect() as c:
                return c.execute(select(func.count()).select_from(rt.outbox)
                                 .where(rt.outbox.c.published_at.is_(None))).scalar_one() == 0
        wait_until(relayed, message="ticket.created relayed")
        with rt.engine.connect() as c:
            assert c.execute(select(customers.c.name)).scalar_one() == "Nine"
        publisher.close()
    finally:
        w.shutdown()
        rt.close()
