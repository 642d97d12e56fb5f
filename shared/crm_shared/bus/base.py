from __future__ import annotations

import abc
import enum
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..events.catalogue import SERVICES, bindings_for


class BusError(RuntimeError):
    """The broker could not take or confirm a message; nothing is marked sent."""


class Outcome(enum.Enum):
    ACK = "ack"
    RETRY = "retry"      # the handler failed: try again after a delay, counting the attempt
    REQUEUE = "requeue"  # infrastructure trouble (database down): try again later, not counted
    DEAD = "dead"


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    routing_key: str
    body: bytes
    correlation_id: str | None = None


@dataclass
class Delivery:
    message_id: str
    routing_key: str
    body: bytes
    attempts: int  # failures so far
    headers: dict = field(default_factory=dict)
    handle: Any = None


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    routing_key: str
    attempts: int
    error: str
    body: bytes


@dataclass(frozen=True)
class Topology:
    namespace: str = "crm"

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    def queue(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def dlq(self, service: str) -> str:
        return f"{self.namespace}.{service}.dlq"

    def retry_queue(self, service: str, delay_ms: int) -> str:
        return f"{self.namespace}.{service}.retry.{delay_ms}"


# What a consumer callback returns: the outcome and, for RETRY/DEAD, the error text and delay.
Decision = tuple[Outcome, str | None, int]
Callback = Callable[[Delivery], Decision]
# A batch callback gets the deliveries in queue order and returns one decision for each, in order.
BatchCallback = Callable[[list[Delivery]], list[Decision]]


class Bus(abc.ABC):
    topology: Topology

    @abc.abstractmethod
    def declare_consumer(self, service: str, event_types: Iterable[str], retry_delays_ms: Iterable[int] = ()) -> None:
        """Create the service's queue, its bindings, retry queues and dead-letter queue (idempotent)."""

    def declare_platform(self, retry_delays_ms: Iterable[int] = ()) -> None:
        """Declare every service's queue from the catalogue, so no event is published before the
        queues of its consumers exist, whatever order the processes start in."""
        for service in SERVICES:
            self.declare_consumer(service, bindings_for(service), retry_delays_ms)

    @abc.abstractmethod
    def publish(self, messages: list[OutgoingMessage]) -> set[str]:
        """Publish persistently and return once the broker has confirmed every message.
        Returns the ids of messages no queue was bound for. Raises BusError otherwise."""

    def consume(self, service: str, callback: Callback, stop: threading.Event, prefetch: int = 100) -> None:
        """Deliver messages of the service's queue to `callback` until `stop` is set; acknowledge,
        delay for retry or dead-letter according to its decision, only after it returns."""
        self.consume_batches(service, lambda deliveries: [callback(d) for d in deliveries], stop, prefetch,
                             max_batch=1)

    @abc.abstractmethod
    def consume_batches(self, service: str, callback: BatchCallback, stop: threading.Event, prefetch: int = 100,
                        max_batch: int = 50) -> None:
        """Like `consume`, but hand `callback` the messages that are already waiting, up to
        `max_batch` at a time (never waiting for more to arrive: a lone message goes alone), and
        settle each according to its decision only after the callback has returned for the batch."""

    @abc.abstractmethod
    def dead_letters(self, service: str) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def replay(self, service: str, message_ids: Iterable[str] | None = None) -> int:
        """Move dead letters (all, or those named) back to the service's queue; returns how many."""

    @abc.abstractmethod
    def send_to_queue(self, service: str, messages: list[OutgoingMessage]) -> int:
        """Put messages into one service's queue only (not through the topic exchange: no other
        subscriber gets them), persistently and confirmed; returns how many. `crm outbox republish`."""

    @abc.abstractmethod
    def queue_depth(self, service: str) -> int: ...

    @abc.abstractmethod
    def ping(self) -> None: ...

    def close(self) -> None:  # pragma: no cover - default
        pass
