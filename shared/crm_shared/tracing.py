"""OpenTelemetry traces across HTTP and the bus. Off unless configured.

One trace follows a change through the platform:

    POST /v1/leads (SERVER span; a caller's W3C `traceparent` is honoured)
      └ lead.assigned create  (PRODUCER span at `uow.emit`; its context goes into the envelope's
        │                      `trace_context`, stored with the outbox row)
        ├ outbox publish      (the relay's batch, whenever it runs: a span of its own trace with a
        │                      link to each event it carries)
        └ lead.assigned process  (CONSUMER span in the receiving service, child of the create span)
            └ … create / process, and so on (notify's delivery to the in-app inbox)

Configuration is the standard OTEL_* environment: tracing is on when an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, OTLP over HTTP/protobuf)
and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` is set. `OTEL_SERVICE_NAME`
(default `crm-<service>`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` and `OTEL_PROPAGATORS` are read by the SDK itself.

When off, every hook below returns at its first line (no SDK objects exist, nothing is imported
beyond the API, envelopes carry no `trace_context`): the cost is one function call.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import replace

_lock = threading.Lock()
_provider = None          # the process's TracerProvider once configured from the environment
_configured = False
_override = None          # tests: a provider (e.g. with an in-memory exporter) for every service
MAX_LINKS = 128           # the SDK's default span link limit: a relay batch links its first 128


def enabled_by_env(env=None) -> bool:
    e = os.environ if env is None else env
    if e.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if e.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(e.get("OTEL_EXPORTER_OTLP_ENDPOINT") or e.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def use_provider(provider) -> None:
    """Tests: send every service's spans of this process to `provider` (None: back to the env)."""
    global _override
    _override = provider


def provider(service: str):
    """The TracerProvider of this process, or None when tracing is off. Built once, on first use,
    from the environment (a process serves one service; its name becomes `service.name`)."""
    global _provider, _configured
    if _override is not None:
        return _override
    if _configured:
        return _provider
    with _lock:
        if not _configured:
            if enabled_by_env():
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
                from opentelemetry.sdk.resources import Resource
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import BatchSpanProcessor
                name = os.environ.get("OTEL_SERVICE_NAME") or f"crm-{service}"
                p = TracerProvider(resource=Resource.create({"service.name": name}))
                p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                _provider = p
            _configured = True
    return _provider


def tracer(service: str):
    p = provider(service)
    return None if p is None else p.get_tracer("crm_shared", schema_url="https://opentelemetry.io/schemas/1.26.0")


def shutdown() -> None:
    """Flush and stop the exporter (the worker calls it on a clean stop; the SDK also does at exit)."""
    if _provider is not None:
        _provider.shutdown()


# -- HTTP --------------------------------------------------------------------------------------------

def instrument_app(app, service: str) -> None:
    """A SERVER span per request (not for /healthz, /readyz, /metrics), continuing the caller's
    trace when it sends a W3C `traceparent`."""
    p = provider(service)
    if p is None:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    def _tag(span, _environ):
        if span.is_recording():
            span.set_attribute("crm.service", service)

    FlaskInstrumentor().instrument_app(app, tracer_provider=p, request_hook=_tag,
                                       excluded_urls="/healthz$,/readyz$,/metrics$")


# -- the bus -----------------------------------------------------------------------------------------

def on_emit(runtime, env):
    """At `uow.emit`: a PRODUCER span, child of whatever is current (the request's or the consumed
    event's span), whose context travels in the envelope (`trace_context`) and so is stored with
    the outbox row: the consumer continues the trace however late the relay publishes it."""
    t = tracer(runtime.name)
    if t is None:
        return env
    from opentelemetry import propagate, trace
    span = t.start_span(f"{env.type} create", kind=trace.SpanKind.PRODUCER, attributes={
        "messaging.system": "crm", "messaging.operation.type": "create",
        "messaging.destination.name": env.type, "messaging.message.id": env.id,
        "messaging.message.conversation_id": env.correlation_id or "", "crm.service": runtime.name})
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    span.end()
    return replace(env, trace_context=carrier) if carrier else env


def relay_span(runtime, rows):
    """Around the relay's publish of one batch: a PRODUCER span linked to the events it carries."""
    t = tracer(runtime.name)
    if t is None:
        return nullcontext()
    return _relay_span(t, runtime, rows)


@contextmanager
def _relay_span(t, runtime, rows):
    from opentelemetry import propagate, trace
    links = []
    for r in rows[:MAX_LINKS]:
        try:
            carrier = json.loads(r.envelope).get("trace_context")
        except (ValueError, AttributeError):
            continue
        if isinstance(carrier, dict):
            ctx = trace.get_current_span(propagate.extract(carrier)).get_span_context()
            if ctx.is_valid:
                links.append(trace.Link(ctx))
    with t.start_as_current_span("outbox publish", kind=trace.SpanKind.PRODUCER, links=links, attributes={
            "messaging.system": "crm", "messaging.operation.type": "send", "messaging.batch.message_count": len(rows),
            "crm.service": runtime.name}):
        yield


def traced_handlers(runtime, handlers: dict) -> dict:
    """The handlers, each wrapped in a CONSUMER span that continues the producer's trace (from the
    envelope's `trace_context`). Unchanged when tracing is off."""
    t = tracer(runtime.name)
    if t is None or not handlers:
        return handlers
    return {event_type: _traced(t, runtime.name, fn) for event_type, fn in handlers.items()}


def _traced(t, service, fn):
    from opentelemetry import propagate, trace

    def handler(uow, env, payload):
        parent = propagate.extract(env.trace_context) if env.trace_context else None
        with t.start_as_current_span(f"{env.type} process", context=parent, kind=trace.SpanKind.CONSUMER,
                                     attributes={"messaging.system": "crm", "messaging.operation.type": "process",
                                                 "messaging.destination.name": env.type,
                                                 "messaging.message.id": env.id,
                                                 "messaging.message.conversation_id": env.correlation_id or "",
                                                 "crm.producer": env.producer, "crm.service": service}):
            return fn(uow, env, payload)
    handler.__wrapped__ = fn
    return handler


# -- logs ------------------------------------------------------------------------------------------

def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, for log lines; None when tracing is off."""
    if _override is None and _provider is None:
        return None
    from opentelemetry import trace
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# -- work that continues later (a stored context) ----------------------------------------------------

def current_context(service: str) -> dict | None:
    """The current span's context as a W3C carrier, to store beside work done later (e.g. notify's
    planned deliveries); None when tracing is off or nothing is being traced."""
    if tracer(service) is None:
        return None
    from opentelemetry import propagate
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def span_from(service: str, name: str, carrier: dict | None, **attributes):
    """A span continuing a stored context (`current_context()`), or nothing when tracing is off."""
    t = tracer(service)
    if t is None:
        return nullcontext()
    from opentelemetry import propagate
    parent = propagate.extract(carrier) if carrier else None
    return t.start_as_current_span(name, context=parent, attributes={"crm.service": service, **attributes})
