"""The envelope every event travels in."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


class EnvelopeError(ValueError):
    pass


@dataclass(frozen=True)
class Envelope:
    type: str
    payload: dict
    producer: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: int = 1
    occurred_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    correlation_id: str | None = None
    causation_id: str | None = None
    # W3C trace context of the producing span ({"traceparent": ..., "tracestate": ...}), only when
    # tracing is on (crm_shared.tracing); absent from the JSON otherwise
    trace_context: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["trace_context"] is None:
            del d["trace_context"]
        return d

    def to_json(self) -> str:
        # the fields as they are, not `to_dict`'s deep copy (`asdict` rebuilds the payload, already
        # JSON primitives, value by value: most of this method's time): json.dumps only reads them
        d = {"type": self.type, "payload": self.payload, "producer": self.producer, "id": self.id,
             "version": self.version, "occurred_at": self.occurred_at, "correlation_id": self.correlation_id,
             "causation_id": self.causation_id}
        if self.trace_context is not None:
            d["trace_context"] = self.trace_context
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Envelope":
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Envelope":
        if not isinstance(data, dict):
            raise EnvelopeError("envelope must be an object")
        missing = [k for k in ("id", "type", "version", "occurred_at", "producer", "payload") if k not in data]
        if missing:
            raise EnvelopeError(f"envelope lacks {', '.join(missing)}")
        try:
            uuid.UUID(str(data["id"]))
            datetime.fromisoformat(data["occurred_at"])
        except ValueError as exc:
            raise EnvelopeError(f"bad envelope field: {exc}") from exc
        if not isinstance(data["payload"], dict) or not isinstance(data["version"], int):
            raise EnvelopeError("payload must be an object and version an integer")
        return cls(type=data["type"], payload=data["payload"], producer=data["producer"], id=str(data["id"]),
                   version=data["version"], occurred_at=data["occurred_at"],
                   correlation_id=data.get("correlation_id"), causation_id=data.get("causation_id"),
                   trace_context=_trace_context(data.get("trace_context")))


def _trace_context(value) -> dict | None:
    """Lenient: a malformed trace context is dropped (the event is still handled, untraced)."""
    if isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str) and len(v) <= 512
                                                  for k, v in value.items()) and len(value) <= 8:
        return value
    return None
