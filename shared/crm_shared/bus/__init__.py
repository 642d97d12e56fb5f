"""The event bus: one durable topic exchange, a queue per consuming service, retries with growing
delay, a dead-letter queue per service. Two transports with the same guarantees:

* `amqp://…`   RabbitMQ (production): quorum queues, publisher confirms (pipelined), mandatory.
* `sqlite:///…` embedded default: one SQLite file shared by every process on the host; bindings
  live in the file, a message is leased to a consumer and redelivered if it is not acknowledged.
"""
from __future__ import annotations

from .base import Bus, BusError, DeadLetter, Delivery, Outcome, OutgoingMessage, Topology


def connect(url: str, namespace: str = "crm", **kw) -> Bus:
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        from .amqp import AmqpBus
        return AmqpBus(url, Topology(namespace), **kw)
    if url.startswith("sqlite://"):
        from .sqlite import SqliteBus
        return SqliteBus(url, Topology(namespace), **kw)
    raise ValueError(f"unsupported BUS_URL {url!r}: use amqp://… or sqlite:///path")


__all__ = ["Bus", "BusError", "DeadLetter", "Delivery", "Outcome", "OutgoingMessage", "Topology", "connect"]
