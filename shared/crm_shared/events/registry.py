"""One registry of versioned event schemas. Producers validate strictly (no undeclared field);
consumers validate leniently (a field added later is ignored), so adding a field is compatible and
removing or renaming one needs a new version."""
from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError


class UnknownEventType(LookupError):
    pass


class EventValidationError(ValueError):
    def __init__(self, event_type: str, version: int, messages):
        super().__init__(f"{event_type} v{version}: {messages}")
        self.messages = messages


class Registry:
    def __init__(self):
        self._schemas: dict[tuple[str, int], type[Schema]] = {}
        self._instances: dict[tuple[str, int, str], Schema] = {}

    def _instance(self, event_type: str, version: int, unknown: str) -> Schema:
        """Schema objects are built once (building one costs more than validating a payload)."""
        key = (event_type, version, unknown)
        inst = self._instances.get(key)
        if inst is None:
            inst = self._instances[key] = self.schema(event_type, version)(unknown=unknown)
        return inst

    def register(self, event_type: str, version: int = 1):
        def deco(schema_cls: type[Schema]):
            key = (event_type, version)
            if key in self._schemas:
                raise ValueError(f"{event_type} v{version} registered twice")
            self._schemas[key] = schema_cls
            return schema_cls
        return deco

    def types(self) -> list[str]:
        return sorted({t for t, _ in self._schemas})

    def latest(self, event_type: str) -> int:
        versions = [v for t, v in self._schemas if t == event_type]
        if not versions:
            raise UnknownEventType(event_type)
        return max(versions)

    def schema(self, event_type: str, version: int) -> type[Schema]:
        try:
            return self._schemas[(event_type, version)]
        except KeyError:
            raise UnknownEventType(f"{event_type} v{version}") from None

    def validate_outgoing(self, event_type: str, version: int, payload: dict) -> dict:
        schema = self._instance(event_type, version, RAISE)
        try:
            # round-trip: load checks, dump gives JSON-ready primitives (dates, decimals as str)
            return schema.dump(schema.load(payload))
        except ValidationError as exc:
            raise EventValidationError(event_type, version, exc.messages) from exc

    def validate_incoming(self, event_type: str, version: int, payload: dict) -> dict:
        schema = self._instance(event_type, version, EXCLUDE)
        try:
            return schema.load(payload)
        except ValidationError as exc:
            raise EventValidationError(event_type, version, exc.messages) from exc


REGISTRY = Registry()
