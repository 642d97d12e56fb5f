"""Runs inside nameko's own virtual environment (made by bench/_peers.py; nameko needs eventlet's
monkey-patching, which must not touch the main environment): nameko's event dispatch and
`@event_handler` on RabbitMQ, with the same JSON payload as the other rows. Prints one JSON object.

    python _nameko_probe.py AMQP_URL TOKEN PAYLOAD_JSON N RATE SECONDS PREFETCH
"""
import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from kombu import Connection  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import event_handler  # noqa: E402
from nameko.standalone.events import event_dispatcher  # noqa: E402


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]


def main():
    url, token, payload_json, n, rate, seconds, prefetch = sys.argv[1:8]
    n, rate, seconds, prefetch = int(n), int(rate), float(seconds), int(prefetch)
    payload = json.loads(payload_json)
    source, service = f"bench{token}n", f"bench{token}svc"
    got = {}

    class Service:
        name = service

        @event_handler(source, "lead_created")
        def handle(self, body):
            got.setdefault(body["i"], time.monotonic())

    config = {"AMQP_URI": url, "max_workers": prefetch, "PREFETCH_COUNT": prefetch}
    dispatch = event_dispatcher(config)
    from importlib.metadata import version
    out = {"nameko": version("nameko"), "eventlet": version("eventlet"), "kombu": version("kombu")}

    # 1. consumer throughput: n events waiting in the handler's (durable) queue, then the service starts
    container = ServiceContainer(Service, config)
    container.start()
    container.stop()  # its queue stays
    t0 = time.monotonic()
    for i in range(n):
        dispatch(source, "lead_created", dict(payload, i=i))
    out["dispatch_rate"] = n / (time.monotonic() - t0)  # one confirm at a time (nameko's default)
    got.clear()
    container = ServiceContainer(Service, config)
    container.start()
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        eventlet.sleep(0.01)
    times = sorted(got.values())
    out["consume_n"] = len(times)
    out["consume_rate"] = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")

    # 2. dispatch-to-handler latency at a steady rate
    got.clear()
    sent = {}
    total = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(total):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            eventlet.sleep(delay)
        elif time.monotonic() - t0 >= seconds:
            break
        sent[i] = time.monotonic()
        dispatch(source, "lead_created", dict(payload, i=i))
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 15
    while len(got) < len(sent) and time.monotonic() < deadline:
        eventlet.sleep(0.01)
    lat = [(got[i] - t) * 1000 for i, t in sent.items() if i in got]
    out.update(lat_sent=len(sent), lat_received=len(lat), lat_rate=len(sent) / elapsed,
               p50=percentile(lat, 50), p99=percentile(lat, 99), max=max(lat) if lat else float("nan"))
    container.stop()

    with Connection(url) as conn:  # what nameko declared for this run
        ch = conn.channel()
        ch.queue_delete(f"evt-{source}-lead_created--{service}.handle")
        ch.exchange_delete(f"{source}.events")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
