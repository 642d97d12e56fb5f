"""End to end through the real worker and bus (embedded and RabbitMQ): lead.converted published on
the bus (twice, the same message) makes one customer, and customer.created reaches the consumers'
queues through the outbox relay."""
import json
import threading

from sqlalchemy import func, select

from crm_shared.bus import OutgoingMessage, Outcome
from crm_shared.events import Envelope
from crm_shared.migrations import upgrade
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, wait_until
from crm_shared.worker import Worker
from sales import models
from sales.service import SERVICE
from sales.testing import converted


def test_worker_consumes_lead_converted_once_and_relays_customer_created(bus_env, tmp_path):
    url = f"sqlite:///{tmp_path}/sales.db"
    upgrade(SERVICE, url)
    bus_env.services |= {"sales", "leads", "notify", "service-desk"}
    rt = Runtime(SERVICE, demo_settings("sales", url, bus_env.url, bus_env.namespace))
    worker = Worker(rt, schedule=False).start()
    try:
        env = Envelope(type="lead.converted", payload=converted("L-e2e"), producer="leads")
        msg = OutgoingMessage(env.id, env.type, env.to_json().encode(), env.id)
        rt.bus.publish([msg])
        rt.bus.publish([msg])  # the same message again (a redelivery): the inbox drops it

        def customers():
            with rt.engine.connect() as c:
                return c.execute(select(func.count()).select_from(models.customers)).scalar_one()

        wait_until(lambda: customers() == 1, timeout=20, message="the customer")

        def relayed():
            with rt.engine.connect() as c:
                return c.execute(select(func.count()).select_from(rt.outbox).where(
                    rt.outbox.c.published_at.is_not(None))).scalar_one() == 1

        wait_until(relayed, timeout=20, message="customer.created relayed")
        seen, stop = [], threading.Event()

        def cb(d):
            seen.append(json.loads(d.body))
            stop.set()
            return Outcome.ACK, None, 0

        rt.bus.consume("leads", cb, stop)
        assert seen[0]["type"] == "customer.created" and seen[0]["payload"]["lead_id"] == "L-e2e"
        assert customers() == 1
    finally:
        worker.shutdown()
        rt.close()
