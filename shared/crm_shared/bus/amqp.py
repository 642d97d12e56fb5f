"""RabbitMQ transport (kombu 5.7 / py-amqp).

* Publishing keeps up to `window` confirms outstanding on one channel (pipelined, not one round
  trip per message), persistent messages, `mandatory` with a return handler.
* Each service has a durable quorum queue with an explicit delivery limit, dead-lettering into its
  own dead-letter queue; delayed retries go through per-service TTL queues that dead-letter back
  into that service's queue only (via the default exchange), never to the other subscribers.
* Consumers acknowledge only after the handler's transaction has committed."""
from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from typing import Iterable

import amqp
import kombu.exceptions
from kombu import Connection, Consumer, Exchange, Queue

from .base import BatchCallback, Bus, BusError, DeadLetter, Delivery, Outcome, OutgoingMessage, Topology

log = logging.getLogger(__name__)
CONNECTION_ERRORS = (OSError, socket.timeout, kombu.exceptions.OperationalError, amqp.exceptions.ConnectionError, amqp.exceptions.ChannelError,
                     amqp.exceptions.RecoverableConnectionError, amqp.exceptions.IrrecoverableConnectionError)


class AmqpBus(Bus):
    def __init__(self, url: str, topology: Topology, window: int = 1000, confirm_timeout: float = 30.0,
                 delivery_limit: int = 20, heartbeat: int = 30, **_):
        self.url = url.replace("pyamqp://", "amqp://")
        self.topology = topology
        self.window = window
        self.confirm_timeout = confirm_timeout
        self.delivery_limit = delivery_limit
        self.heartbeat = heartbeat
        self._pub_conn: Connection | None = None
        self._pub_ch = None
        self._lock = threading.Lock()
        self._exchange = Exchange(topology.exchange, type="topic", durable=True)

    def _connection(self, heartbeat: int | None = None) -> Connection:
        # no `confirm_publish` transport option: it makes py-amqp wait for each confirm in turn;
        # the publisher pipelines confirms itself and the side channels use basic_publish_confirm
        conn = Connection(self.url, heartbeat=self.heartbeat if heartbeat is None else heartbeat, connect_timeout=5)
        conn.ensure_connection(max_retries=1)
        return conn

    # -- topology -------------------------------------------------------------------------------
    def _queue(self, service: str, event_types: Iterable[str] = ()) -> Queue:
        t = self.topology
        return Queue(t.queue(service), exchange=self._exchange, durable=True,
                     bindings=None, queue_arguments={
                         "x-queue-type": "quorum",
                         "x-delivery-limit": self.delivery_limit,
                         "x-dead-letter-exchange": "",
                         "x-dead-letter-routing-key": t.dlq(service)})

    def declare_consumer(self, service, event_types, retry_delays_ms=()):
        t = self.topology
        try:
            with self._connection() as conn:
                ch = conn.channel()
                self._exchange.bind(ch).declare()
                Queue(t.dlq(service), durable=True, queue_arguments={"x-queue-type": "quorum"}).bind(ch).declare()
                q = self._queue(service).bind(ch)
                q.declare()
                for et in event_types:
                    ch.queue_bind(q.name, t.exchange, routing_key=et)
                for delay in retry_delays_ms:
                    # classic queue: message TTL then dead-letter to the service's own queue only
                    Queue(t.retry_queue(service, delay), durable=True, queue_arguments={
                        "x-queue-type": "classic", "x-message-ttl": int(delay),
                        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": t.queue(service),
                    }).bind(ch).declare()
        except CONNECTION_ERRORS as exc:
            raise BusError(f"cannot declare topology: {exc}") from exc

    # -- publish --------------------------------------------------------------------------------
    def _publisher(self):
        if self._pub_conn is None:
            # no heartbeats: nothing reads this connection while the relay is idle, so the broker
            # would drop it; a dead connection shows as an error on the next publish and is replaced
            conn = self._connection(heartbeat=0)
            ch = conn.channel()
            ch.confirm_select()
            self._exchange.bind(ch).declare()  # an undeclared exchange would drop the events
            ch.events["basic_ack"].add(self._on_ack)
            ch.events["basic_nack"].add(self._on_nack)
            ch.events["basic_return"].add(self._on_return)
            self._pub_conn, self._pub_ch, self._tag = conn, ch, 0
        return self._pub_conn, self._pub_ch

    def _on_ack(self, tag, multiple):
        self._settle(tag, multiple, ok=True)

    def _on_nack(self, tag, multiple):
        self._settle(tag, multiple, ok=False)

    def _settle(self, tag, multiple, ok):
        # tags are issued in order and dicts keep insertion order: a multiple-ack settles a prefix
        tags = list(itertools.takewhile(lambda t: t <= tag, self._pending)) if multiple else [tag]
        for t in tags:
            mid = self._pending.pop(t, None)
            if mid is not None and not ok:
                self._nacked.add(mid)

    def _on_return(self, exc, exchange, routing_key, message):
        self._returned.add(message.properties.get("message_id"))

    def _reset_publisher(self):
        conn, self._pub_conn, self._pub_ch = self._pub_conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # pragma: no cover - already broken
                pass

    def publish(self, messages: list[OutgoingMessage]) -> set[str]:
        if not messages:
            return set()
        with self._lock:
            self._pending: dict[int, str] = {}
            self._nacked: set[str] = set()
            self._returned: set[str] = set()
            try:
                conn, ch = self._publisher()
                deadline = time.monotonic() + self.confirm_timeout
                for m in messages:
                    while len(self._pending) >= self.window:
                        self._drain(conn, deadline)
                    self._tag += 1
                    self._pending[self._tag] = m.message_id
                    msg = amqp.Message(m.body, content_type="application/json", delivery_mode=2,
                                       message_id=m.message_id, type=m.routing_key,
                                       correlation_id=m.correlation_id or "")
                    ch.basic_publish(msg, exchange=self.topology.exchange, routing_key=m.routing_key, mandatory=True)
                while self._pending:
                    self._drain(conn, deadline)
            except CONNECTION_ERRORS as exc:
                self._reset_publisher()
                raise BusError(f"publish failed: {exc}") from exc
            if self._nacked:
                raise BusError(f"broker refused {len(self._nacked)} message(s)")
            return set(self._returned)

    def _drain(self, conn, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            self._reset_publisher()
            raise BusError("timed out waiting for publisher confirms")
        try:
            conn.drain_events(timeout=min(left, 1.0))
        except socket.timeout:
            pass

    # -- consume --------------------------------------------------------------------------------
    def consume_batches(self, service: str, callback: BatchCallback, stop: threading.Event, prefetch: int = 100,
                        max_batch: int = 50) -> None:
        backoff = 0.5
        max_batch = max(1, min(max_batch, prefetch))
        while not stop.is_set():
            try:
                with self._connection() as conn, self._connection(heartbeat=0) as side:
                    side_ch = side.channel()
                    side_ch.confirm_select()
                    ch = conn.channel()
                    ch.basic_qos(0, prefetch, False)
                    waiting: list[Delivery] = []

                    def on_message(message):
                        d = Delivery(message.properties.get("message_id") or "", message.delivery_info["routing_key"],
                                     message.body, int((message.headers or {}).get("x-crm-attempts", 0)),
                                     dict(message.headers or {}), handle=message)
                        if d.routing_key.startswith(self.topology.queue(service)):  # came back from a retry queue
                            d.routing_key = (message.properties.get("type") or d.routing_key)
                        waiting.append(d)

                    consumer = Consumer(ch, queues=[Queue(self.topology.queue(service), no_declare=True)],
                                        on_message=on_message, no_ack=False, accept=None)
                    with consumer:
                        backoff = 0.5
                        while not stop.is_set():
                            try:
                                conn.drain_events(timeout=0.5)
                            except socket.timeout:
                                conn.heartbeat_check()
                                continue
                            # take what has already arrived, without waiting (timeout 0: a partly
                            # read frame stays buffered in py-amqp for the next read)
                            while len(waiting) < max_batch:
                                try:
                                    conn.drain_events(timeout=0)
                                except socket.timeout:
                                    break
                            if waiting:
                                batch = waiting[:]
                                del waiting[:]
                                self._settle_batch(service, side_ch, batch, callback(batch))
            except CONNECTION_ERRORS as exc:
                log.warning("bus consumer connection lost, reconnecting", extra={"error": str(exc)})
                stop.wait(backoff)
                backoff = min(backoff * 2, 10)

    def _settle_batch(self, service: str, side_ch, batch: list[Delivery], decisions) -> None:
        decisions = list(decisions)
        if len(decisions) != len(batch):
            raise ValueError(f"consumer callback returned {len(decisions)} decisions for {len(batch)} messages")
        if len(batch) > 1 and all(dec[0] is Outcome.ACK for dec in decisions):
            # every earlier delivery on this channel is settled already: one frame acknowledges them all
            batch[-1].handle.ack(multiple=True)
            return
        for d, decision in zip(batch, decisions):
            self._settle_delivery(service, side_ch, d, decision)

    def _settle_delivery(self, service: str, side_ch, d: Delivery, decision) -> None:
        outcome, error, delay_ms = decision
        message = d.handle
        if outcome is Outcome.ACK:
            message.ack()
            return
        headers = dict(d.headers)
        if outcome is Outcome.DEAD:
            headers.update({"x-crm-attempts": d.attempts + 1, "x-crm-error": (error or "")[:4000]})
            target = self.topology.dlq(service)
        else:
            headers.update({"x-crm-attempts": d.attempts + int(outcome is Outcome.RETRY),
                            "x-crm-error": (error or "")[:4000]})
            target = self.topology.retry_queue(service, delay_ms)
        msg = amqp.Message(d.body, content_type="application/json", delivery_mode=2, message_id=d.message_id,
                           type=d.routing_key, application_headers=headers)
        side_ch.basic_publish_confirm(msg, exchange="", routing_key=target, mandatory=True)
        message.ack()  # only once the copy is safely in the retry or dead-letter queue

    # -- dead letters ---------------------------------------------------------------------------
    def _get_all(self, ch, queue: str):
        out = []
        while True:
            m = ch.basic_get(queue, no_ack=False)
            if m is None:
                return out
            out.append(m)

    def dead_letters(self, service):
        with self._connection() as conn:
            ch = conn.channel()
            msgs = self._get_all(ch, self.topology.dlq(service))
            result = [DeadLetter(m.properties.get("message_id", ""), m.properties.get("type", ""),
                                 int((m.headers or {}).get("x-crm-attempts", 0)),
                                 str((m.headers or {}).get("x-crm-error", "")), m.body) for m in msgs]
            ch.close()  # nothing acknowledged: every message goes back to the dead-letter queue
        return result

    def replay(self, service, message_ids=None):
        wanted = None if message_ids is None else set(message_ids)
        n = 0
        with self._connection() as conn:
            ch = conn.channel()
            ch.confirm_select()
            for m in self._get_all(ch, self.topology.dlq(service)):
                if wanted is not None and m.properties.get("message_id") not in wanted:
                    continue
                msg = amqp.Message(m.body, content_type="application/json", delivery_mode=2,
                                   message_id=m.properties.get("message_id"), type=m.properties.get("type"),
                                   application_headers={"x-crm-replayed": 1})
                ch.basic_publish_confirm(msg, exchange="", routing_key=self.topology.queue(service), mandatory=True)
                ch.basic_ack(m.delivery_tag)
                n += 1
            ch.close()  # the ones not replayed return to the dead-letter queue
        return n

    def send_to_queue(self, service, messages):
        """Through the default exchange to `crm.<service>` (confirmed one by one: an operator's
        command, not the hot path); `type` carries the event type, as for retries and replays."""
        n = 0
        try:
            with self._connection() as conn:
                ch = conn.channel()
                ch.confirm_select()
                for m in messages:
                    msg = amqp.Message(m.body, content_type="application/json", delivery_mode=2,
                                       message_id=m.message_id, type=m.routing_key,
                                       correlation_id=m.correlation_id or "",
                                       application_headers={"x-crm-republished": 1})
                    ch.basic_publish_confirm(msg, exchange="", routing_key=self.topology.queue(service), mandatory=True)
                    n += 1
                ch.close()
        except CONNECTION_ERRORS as exc:
            raise BusError(f"send to {service} failed after {n} message(s): {exc}") from exc
        return n

    def queue_depth(self, service):
        with self._connection() as conn:
            _, count, _ = conn.channel().queue_declare(self.topology.queue(service), passive=True)
            return count

    def ping(self):
        try:
            with self._connection():
                pass
        except CONNECTION_ERRORS as exc:
            raise BusError(str(exc)) from exc

    def close(self):
        self._reset_publisher()
