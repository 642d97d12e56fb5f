"""OpenTelemetry traces across HTTP and the bus: a request's SERVER span (continuing the caller's
W3C traceparent), the PRODUCER span of each event it emits (its context stored in the envelope, so
in the outbox row), the relay's publish span linking the events, and the CONSUMER span of the
handler in another service: one trace id, the right parents. Off by default: no span, no
trace_context in the envelope, the handlers unwrapped."""
import json
import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from crm_shared import tracing
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events import Envelope
from crm_shared.inbox import Dispatcher
from crm_shared.outbox import Relay
from crm_shared.runtime import Runtime
from crm_shared.testing import demo_counts, demo_settings, make_demo_service, wait_until
from crm_shared.web import create_service_app
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


def platform(tmp_path, bus_env):
    """Producer `a` behind HTTP, consumer `b` handling lead.created, on one bus."""
    app = create_service_app(make_demo_service("a", handles=()),
                             demo_settings("a", f"sqlite:///{tmp_path}/a.db", bus_env.url, bus_env.namespace),
                             testing=True)
    producer = runtime_of(app)
    producer.definition.metadata.create_all(producer.engine)
    consumer = Runtime(make_demo_service("b"), demo_settings("b", f"sqlite:///{tmp_path}/b.db", bus_env.url,
                                                             bus_env.namespace))
    consumer.definition.metadata.create_all(consumer.engine)
    bus_env.services |= {"a", "b"}
    consumer.bus.declare_consumer("b", ["lead.created"], consumer.settings.retry_delays_ms)
    return app, producer, consumer


def post_note(app, headers=None):
    tok = dev_token(DEV_JWT_SECRET, "u1", "Li Lei", ["sales_rep"], "east")
    r = app.test_client().post("/v1/notes", json={"text": "hi"},
                               headers={"Authorization": f"Bearer {tok}", **(headers or {})})
    assert r.status_code == 201, r.json
    return r


def consume_until_applied(consumer, n=1):
    stop = threading.Event()
    dispatcher = Dispatcher(consumer, consumer.definition.handlers)
    t = threading.Thread(target=consumer.bus.consume, args=("b", dispatcher, stop), kwargs={"prefetch": 10})
    t.start()
    try:
        wait_until(lambda: sum(demo_counts(consumer.engine, consumer.definition.metadata).values()) >= n,
                   timeout=20, message="the consumer to apply the event")
    finally:
        stop.set()
        t.join(20)


def test_one_trace_from_the_request_through_the_outbox_to_the_consumer(spans, tmp_path, bus_env):
    app, producer, consumer = platform(tmp_path, bus_env)
    assert app._is_instrumented_by_opentelemetry
    post_note(app, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    # the trace context is stored with the outbox row, before any relay ran
    with producer.engine.connect() as c:
        stored = json.loads(c.execute(select(producer.outbox.c.envelope)).scalar_one())
    assert stored["trace_context"]["traceparent"].startswith(f"00-{CALLER_TRACE}-")

    assert Relay(producer).drain() == 1
    consume_until_applied(consumer)

    by_name = {s.name: s for s in spans.get_finished_spans()}
    http = next(s for s in by_name.values() if s.kind == trace.SpanKind.SERVER)
    create, relay, process = by_name["lead.created create"], by_name["outbox publish"], by_name["lead.created process"]
    trace_id = int(CALLER_TRACE, 16)
    # the request continues the caller's trace
    assert http.context.trace_id == trace_id and http.parent.span_id == int(CALLER_SPAN, 16)
    assert http.attributes["http.route"] == "/v1/notes" and http.attributes["crm.service"] == "a"
    # the event is created inside the request
    assert create.kind == trace.SpanKind.PRODUCER
    assert create.context.trace_id == trace_id and create.parent.span_id == http.context.span_id
    assert stored["trace_context"]["traceparent"] == (
        f"00-{CALLER_TRACE}-{create.context.span_id:016x}-01")
    # the relay's batch links the event it published
    assert relay.kind == trace.SpanKind.PRODUCER and relay.attributes["messaging.batch.message_count"] == 1
    assert [link.context.span_id for link in relay.links] == [create.context.span_id]
    # the consumer in service b: same trace, child of the producing span
    assert process.kind == trace.SpanKind.CONSUMER and process.attributes["crm.service"] == "b"
    assert process.context.trace_id == trace_id and process.parent.span_id == create.context.span_id
    assert process.attributes["messaging.message.id"] == stored["id"]
    producer.close()
    consumer.close()


def test_a_request_without_traceparent_starts_a_trace(spans, tmp_path, bus_env):
    app, producer, consumer = platform(tmp_path, bus_env)
    post_note(app)
    assert app.test_client().get("/healthz").status_code == 200   # not traced
    Relay(producer).drain()
    consume_until_applied(consumer)
    finished = spans.get_finished_spans()
    assert sorted(s.name for s in finished) == ["POST /v1/notes", "lead.created create", "lead.created process",
                                                "outbox publish"]
    http = next(s for s in finished if s.kind == trace.SpanKind.SERVER)
    process = next(s for s in finished if s.kind == trace.SpanKind.CONSUMER)
    assert http.parent is None and process.context.trace_id == http.context.trace_id
    producer.close()
    consumer.close()


def test_off_by_default(tmp_path, bus_env, monkeypatch):
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tracing, "_configured", False)
    monkeypatch.setattr(tracing, "_provider", None)
    app, producer, consumer = platform(tmp_path, bus_env)
    assert tracing.provider("a") is None
    post_note(app, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    with producer.engine.connect() as c:
        stored = json.loads(c.execute(select(producer.outbox.c.envelope)).scalar_one())
    assert "trace_context" not in stored              # the envelope is exactly as before
    d = Dispatcher(consumer, consumer.definition.handlers)
    assert d.handlers is consumer.definition.handlers  # handlers are not wrapped
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)   # no HTTP instrumentation
    producer.close()
    consumer.close()


def test_enabled_only_by_an_otlp_endpoint():
    assert not tracing.enabled_by_env({})
    assert tracing.enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.enabled_by_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})


def test_envelope_trace_context_is_optional_and_lenient():
    env = Envelope(type="lead.created", payload={}, producer="a")
    assert "trace_context" not in env.to_dict()
    carrier = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    again = Envelope.from_json(Envelope(type="lead.created", payload={}, producer="a", trace_context=carrier).to_json())
    assert again.trace_context == carrier
    bad = dict(env.to_dict(), trace_context={"traceparent": 5})
    assert Envelope.from_dict(bad).trace_context is None   # dropped, the event is still valid
    assert Envelope.from_dict(dict(env.to_dict(), trace_context="x")).trace_context is None


def test_log_lines_name_their_trace_when_tracing_is_on(spans):
    import logging

    from crm_shared.logs import _ContextFilter
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert _ContextFilter("a").filter(record) and not hasattr(record, "trace_id")   # no current span
    t = tracing.tracer("a")
    with t.start_as_current_span("work") as span:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        _ContextFilter("a").filter(record)
    assert record.trace_id == f"{span.get_span_context().trace_id:032x}"
    assert record.span_id == f"{span.get_span_context().span_id:016x}"
    tracing.use_provider(None)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    _ContextFilter("a").filter(record)
    assert not hasattr(record, "trace_id")


OTLP_SCRIPT = r"""
import sys
from crm_shared import tracing
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.testing import demo_settings, make_demo_service
from crm_shared.web import create_service_app
from crm_shared.web.app import runtime_of
from crm_shared.web.auth import dev_token

d = make_demo_service("a", handles=())
app = create_service_app(d, demo_settings("a", sys.argv[1], sys.argv[2], "otlp"), testing=True)
d.metadata.create_all(runtime_of(app).engine)
tok = dev_token(DEV_JWT_SECRET, "u1", "Li", ["sales_rep"], "east")
r = app.test_client().post("/v1/notes", json={"text": "hi"}, headers={"Authorization": "Bearer " + tok})
assert r.status_code == 201, r.json
tracing.shutdown()   # flushes the batch to the collector
"""


def test_spans_are_exported_by_otlp_http_when_an_endpoint_is_set(tmp_path):
    """A real process with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a stand-in collector on a free
    local port: the SDK posts OTLP/protobuf to /v1/traces with the request's and the event's spans
    under service.name crm-a (or OTEL_SERVICE_NAME)."""
    import os
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}",
                   OTEL_SERVICE_NAME="crm-a-test")
        run = subprocess.run([sys.executable, "-c", OTLP_SCRIPT, f"sqlite:///{tmp_path}/a.db",
                              f"sqlite:///{tmp_path}/bus.db"], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
    finally:
        server.shutdown()
    assert received and {p for p, _ in received} == {"/v1/traces"}
    names, services = set(), set()
    for _, body in received:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            names |= {s.name for ss in rs.scope_spans for s in ss.spans}
    assert services == {"crm-a-test"}
    assert {"POST /v1/notes", "lead.created create"} <= names
