"""Prometheus metrics shared by every service (labelled with the service name)."""
from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter("crm_http_requests_total", "HTTP requests", ["service", "method", "endpoint", "status"])
HTTP_LATENCY = Histogram("crm_http_request_duration_seconds", "HTTP request latency", ["service", "method", "endpoint"],
                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
EVENTS_EMITTED = Counter("crm_events_emitted_total", "Events written to the outbox", ["service"])
EVENTS_PUBLISHED = Counter("crm_events_published_total", "Events confirmed by the broker", ["service"])
EVENTS_UNROUTABLE = Counter("crm_events_unroutable_total", "Published events no queue was bound for", ["service"])
EVENTS_CONSUMED = Counter("crm_events_consumed_total", "Events handled", ["service", "type", "outcome"])
EVENTS_FAILED = Counter("crm_events_failed_total", "Handler failures (retried or dead-lettered)", ["service", "type"])
HANDLER_LATENCY = Histogram("crm_event_handler_duration_seconds", "Handler time", ["service", "type"],
                            buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 5))
