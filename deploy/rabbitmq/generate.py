"""Write deploy/rabbitmq/definitions.json: the platform's RabbitMQ topology, users and permissions,
generated from the event catalogue so that it cannot drift from what the code declares.

    .venv/bin/python deploy/rabbitmq/generate.py            # rewrite definitions.json
    .venv/bin/python deploy/rabbitmq/generate.py --check    # exit 1 if the file is stale

tests/test_deploy.py fails when the committed file differs from what this script generates (e.g.
after an event type or a consumer was added to crm_shared/events/catalogue.py): run it again.

Queue arguments are the ones crm_shared.bus.amqp declares (main queue arguments are taken from
AmqpBus itself): RabbitMQ refuses (PRECONDITION_FAILED) to redeclare a queue with different
arguments, and every worker redeclares the topology when it starts. The defaults below must equal
BUS_NAMESPACE, BUS_DELIVERY_LIMIT and BUS_RETRY_DELAYS_MS of the deployed services.

Users carry no password (`password_hash` empty: no password login until one is set): passwords
are set from the secret store after the import, see docs/OPERATIONS.md, "RabbitMQ users"."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from crm_shared.bus.amqp import AmqpBus
from crm_shared.bus.base import Topology
from crm_shared.config import Settings
from crm_shared.events.catalogue import CONSUMERS, PRODUCERS, SERVICES, bindings_for

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "definitions.json"
VHOST = "crm"
RABBIT_VERSION = "3.13.0"


def user_name(service: str) -> str:
    return f"crm-{service}"


def _alternatives(names) -> str:
    return "|".join(re.escape(n) for n in names)


def permissions(topology: Topology, service: str) -> dict:
    """AMQP 0-9-1 permissions are three regular expressions over resource names (exchanges and
    queues alike), checked per operation: configure = declare/delete, write = publish to an
    exchange or bind a queue, read = consume/get from a queue or bind from an exchange."""
    t = topology
    all_queues = [t.queue(s) for s in SERVICES]
    every_resource = [t.exchange] + [q for s in SERVICES for q in (t.queue(s), t.dlq(s))]
    return {
        # every worker declares the whole platform at start (Bus.declare_platform), so it must be
        # allowed to (re)declare every service's queues; retry queues by pattern
        "configure": "^(" + _alternatives(every_resource) + "|" + re.escape(t.namespace) + r"\.("
                     + _alternatives(SERVICES) + r")\.retry\.[0-9]+)$",
        # publish: the events exchange, and the default exchange (amq.default) for its retry and
        # dead-letter copies and replays; binding: every service's main queue (declare_platform)
        "write": "^(" + _alternatives(["amq.default", t.exchange] + all_queues) + ")$",
        # consume: only its own queue and dead-letter queue; bind: read on the events exchange
        "read": "^(" + _alternatives([t.exchange, t.queue(service), t.dlq(service)]) + ")$",
    }


def topic_permissions(topology: Topology, service: str) -> dict:
    """Topic authorisation on the events exchange: a service publishes only the event types it
    produces (routing key = event type); bindings (read) stay open because declare_platform binds
    every service's queue."""
    produced = sorted(t for t, p in PRODUCERS.items() if p == service)
    write = "^(" + _alternatives(produced) + ")$" if produced else "^$"
    return {"exchange": topology.exchange, "write": write, "read": ".*"}


def build(namespace: str = "crm", delivery_limit: int = 20, retry_delays_ms=(1000, 5000, 30000),
          vhost: str = VHOST) -> dict:
    t = Topology(namespace)
    bus = AmqpBus("amqp://localhost//", t, delivery_limit=delivery_limit)
    queues, bindings, policies, users, perms, topic_perms = [], [], [], [], [], []
    for s in SERVICES:
        main_args = dict(bus._queue(s).queue_arguments)
        queues.append({"name": t.queue(s), "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": main_args})
        queues.append({"name": t.dlq(s), "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": {"x-queue-type": "quorum"}})
        for delay in retry_delays_ms:
            queues.append({"name": t.retry_queue(s, delay), "vhost": vhost, "durable": True, "auto_delete": False,
                           "arguments": {"x-queue-type": "classic", "x-message-ttl": int(delay),
                                         "x-dead-letter-exchange": "", "x-dead-letter-routing-key": t.queue(s)}})
        for event_type in bindings_for(s):
            bindings.append({"source": t.exchange, "vhost": vhost, "destination": t.queue(s),
                             "destination_type": "queue", "routing_key": event_type, "arguments": {}})
        # The queue arguments already dead-letter and limit deliveries; the policy is the safety net
        # for a queue declared without them, and adds what arguments cannot: at-least-once
        # dead-lettering (the broker keeps a message until the dead-letter queue confirmed it).
        policies.append({"vhost": vhost, "name": f"{t.queue(s)}-dead-letter",
                         "pattern": "^" + re.escape(t.queue(s)) + "$", "apply-to": "queues", "priority": 10,
                         "definition": {"dead-letter-exchange": "", "dead-letter-routing-key": t.dlq(s),
                                        "delivery-limit": delivery_limit,
                                        "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}})
        users.append({"name": user_name(s), "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
                      "tags": [], "limits": {}})
        perms.append({"user": user_name(s), "vhost": vhost, **permissions(t, s)})
        topic_perms.append({"user": user_name(s), "vhost": vhost, **topic_permissions(t, s)})
    return {
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "vhosts": [{"name": vhost, "description": "CRM platform events", "tags": [], "metadata": {}}],
        "users": users,
        "permissions": perms,
        "topic_permissions": topic_perms,
        "parameters": [],
        "global_parameters": [],
        "policies": policies,
        "exchanges": [{"name": t.exchange, "vhost": vhost, "type": "topic", "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        "queues": queues,
        "bindings": bindings,
    }


def render(**kwargs) -> str:
    return json.dumps(build(**kwargs), indent=2, sort_keys=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if definitions.json is not up to date")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args(argv)
    d = Settings.from_env("cli", env={})  # the defaults, not this shell's environment
    text = render(namespace=d.bus_namespace, delivery_limit=d.delivery_limit, retry_delays_ms=d.retry_delays_ms)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python deploy/rabbitmq/generate.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
