"""End to end through the bus: the worker consumes events from the queue, the dispatch job sends
them to the inbox and a local webhook receiver; a redelivered event gives no second message."""
from sqlalchemy import func, select

from crm_shared.bus import OutgoingMessage
from crm_shared.events import Envelope
from crm_shared.migrations import upgrade
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_settings, wait_until
from crm_shared.worker import Worker

from notify import models
from notify.channels.webhook import verify
from notify.service import SERVICE


def count(rt, table):
    with rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def test_events_from_the_queue_reach_the_inbox_and_a_webhook_once(tmp_path, bus_env, receiver):
    url = f"sqlite:///{tmp_path}/notify.db"
    upgrade(SERVICE, url)
    bus_env.services.add("notify")
    settings = demo_settings("notify", url, bus_env.url, bus_env.namespace,
                             extra={"NOTIFY_WEBHOOK_ALLOW_PRIVATE": "1", "SMS_URL": f"file://{tmp_path}/sms.jsonl"})
    rt = Runtime(SERVICE, settings)
    with rt.uow() as uow:
        uow.session.execute(models.webhooks.insert().values(
            owner_id="admin1", kind="webhook", url=receiver.url, secret="0123456789abcdef",
            event_types=["lead.assigned"], language="en", enabled=True, consecutive_failures=0,
            created_at=rt.clock.now()))
        uow.commit()
    w = Worker(rt).start()
    try:
        envs = [Envelope(type="lead.assigned", producer="leads",
                         payload={"lead_id": f"L{n}", "owner_id": "u1", "name": f"Lead {n}", "reason": "auto"})
                for n in range(5)]
        msgs = [OutgoingMessage(e.id, e.type, e.to_json().encode()) for e in envs]
        rt.bus.publish(msgs)
        rt.bus.publish(msgs[:2])  # the same events again (a producer's relay retried)
        wait_until(lambda: count(rt, models.inbox_items) >= 5 and len(receiver.requests) >= 5, timeout=30,
                   message="five inbox items and five webhook calls")
        wait_until(lambda: count(rt, models.processed_events) >= 5, timeout=10, message="events processed")
    finally:
        w.shutdown()
        rt.close()
    assert count(rt, models.inbox_items) == 5
    assert len(receiver.requests) == 5
    assert all(verify("0123456789abcdef", r["headers"]["X-CRM-Timestamp"], r["body"], r["headers"]["X-CRM-Signature"])
               for r in receiver.requests)
