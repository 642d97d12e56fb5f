"""One lead's trace across services (issue 9): the intake request in leads, `lead.assigned`
through leads' outbox and the bus, notify's handler, and notify's later delivery into the rep's
in-app inbox, all in one trace with the right parents. In-memory span exporter; leads and notify on
their own databases, the embedded bus or RabbitMQ."""
import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm_shared import tracing
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events.catalogue import bindings_for
from crm_shared.inbox import Dispatcher
from crm_shared.migrations import upgrade
from crm_shared.outbox import Relay
from crm_shared.testing import demo_settings, wait_until
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token
from leads.app import create_app as leads_app
from leads.service import SERVICE as LEADS
from notify import jobs
from notify.app import create_app as notify_app
from notify.service import SERVICE as NOTIFY

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


def auth(user, roles, team="east"):
    return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user.upper(), list(roles), team)}


def test_a_lead_from_intake_to_the_reps_inbox_is_one_trace(spans, tmp_path, bus_env):
    bus_env.services |= {"leads", "notify"}
    apps = {}
    for d, make in ((LEADS, leads_app), (NOTIFY, notify_app)):
        url = f"sqlite:///{tmp_path}/{d.name}.db"
        upgrade(d, url)
        apps[d.name] = make(demo_settings(d.name, url, bus_env.url, bus_env.namespace), testing=True)
    leads, notify = runtime_of(apps["leads"]), runtime_of(apps["notify"])
    notify.bus.declare_consumer("notify", bindings_for("notify"), notify.settings.retry_delays_ms)

    admin, c = auth("admin", ["admin"]), apps["leads"].test_client()
    r = c.post("/v1/teams", json={"name": "East", "code": "east", "strategy": "round_robin",
                                  "members": [{"user_id": "rep1", "name": "Rep One"}]}, headers=admin)
    assert r.status_code == 201, r.json
    r = c.post("/v1/routing-rules", json={"priority": 10, "conditions": {}, "team_id": int(r.json["id"])},
               headers=admin)
    assert r.status_code == 201, r.json
    spans.clear()
    r = c.post("/v1/leads", json={"name": "Bo", "phone": "13800138000", "source": "visit"},
               headers={**admin, "traceparent": f"00-{TRACE}-{CALLER}-01"})
    assert r.status_code == 201 and r.json["owner_id"] == "rep1", r.json

    Relay(leads).drain()
    stop = threading.Event()
    consumer = threading.Thread(target=notify.bus.consume, args=("notify", Dispatcher(notify, NOTIFY.handlers), stop))
    consumer.start()
    try:
        wait_until(lambda: any(s.name == "lead.assigned process" for s in spans.get_finished_spans()), timeout=20,
                   message="notify to handle lead.assigned")
        wait_until(lambda: notify.bus.queue_depth("notify") == 0, timeout=20, message="notify's queue to drain")
    finally:
        stop.set()
        consumer.join(20)
    jobs.send_due(notify)
    inbox = apps["notify"].test_client().get("/v1/inbox", headers=auth("rep1", ["sales_rep"])).json["items"]
    assert [i["refs"].get("lead_id") for i in inbox if i["event_type"] == "lead.assigned"] == [r.json["id"]]

    finished = spans.get_finished_spans()
    by = {s.name: s for s in finished}
    http = next(s for s in finished if s.kind == trace.SpanKind.SERVER and s.attributes.get("crm.service") == "leads")
    create, process = by["lead.assigned create"], by["lead.assigned process"]
    deliver = by["notify deliver inbox"]
    assert {s.context.trace_id for s in (http, create, process, deliver)} == {int(TRACE, 16)}
    assert http.parent.span_id == int(CALLER, 16)
    assert create.parent.span_id == http.context.span_id and create.attributes["crm.service"] == "leads"
    assert process.parent.span_id == create.context.span_id and process.attributes["crm.service"] == "notify"
    assert deliver.parent.span_id == process.context.span_id
    assert deliver.attributes["crm.event_type"] == "lead.assigned"
    leads.close()
    notify.close()
