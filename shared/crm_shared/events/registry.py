"""One registry of versioned event schemas. Producers validate strictly (no undeclared field);
consumers validate leniently (a field added later is ignored), so adding a field is compatible and
removing or renaming one needs a new version."""
from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, validate

# fields whose load of a value of exactly this type returns the value itself (a str subclass, a
# bool for an Integer, "72" for an Integer… go through marshmallow)
_PLAIN = {fields.String: str, fields.Integer: int}


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
        self._plain: dict[tuple[str, int, str], object] = {}  # (type, version, unknown) -> plain loader or None

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
        key = (event_type, version, RAISE)
        plain = self._plain.get(key, missing)
        if plain is missing:
            plain = self._plain[key] = _plain_loader(self._instance(event_type, version, RAISE), strict=True)
        if plain is not None:
            loaded = plain(payload)  # for these fields what load gives, dump gives back unchanged
            if loaded is not None:
                return loaded
        schema = self._instance(event_type, version, RAISE)
        try:
            # round-trip: load checks, dump gives JSON-ready primitives (dates, decimals as str)
            return schema.dump(schema.load(payload))
        except ValidationError as exc:
            raise EventValidationError(event_type, version, exc.messages) from exc

    def validate_incoming(self, event_type: str, version: int, payload: dict) -> dict:
        key = (event_type, version, EXCLUDE)
        plain = self._plain.get(key, missing)
        if plain is missing:
            plain = self._plain[key] = _plain_loader(self._instance(event_type, version, EXCLUDE))
        if plain is not None:
            loaded = plain(payload)
            if loaded is not None:
                return loaded
        schema = self._instance(event_type, version, EXCLUDE)
        try:
            return schema.load(payload)
        except ValidationError as exc:
            raise EventValidationError(event_type, version, exc.messages) from exc


def _plain_loader(schema: Schema, strict: bool = False):
    """For a schema of plain String and Integer fields only (no validators but one `OneOf`, no hooks,
    data keys, load defaults, load- or dump-only fields), a loader that gives what `schema.load` gives
    (unknown fields excluded; with `strict`, a payload with one goes to marshmallow, which raises) for
    a payload whose every value has exactly its field's type (and is one of its `OneOf` choices) or is
    an allowed None, and None for any other payload, which then goes through marshmallow (coercions,
    error messages). For such fields `dump` gives back what `load` gave. Marshmallow costs about
    0.1 ms per event of a consumer's CPU; this is a few microseconds. None when the schema has
    anything else."""
    if any(schema._hooks.values()) or set(schema.load_fields) != set(schema.dump_fields):
        return None
    plan = []
    for name, f in schema.load_fields.items():
        kind = _PLAIN.get(type(f))
        if (kind is None or f.pre_load or f.post_load or f.data_key is not None
                or f.attribute is not None or f.load_default is not missing or f.load_only or f.dump_only):
            return None
        choices = _choices(f.validators, kind)
        if choices is False:
            return None
        plan.append((name, kind, f.required, f.allow_none, choices))
    plan = tuple(plan)
    names = frozenset(name for name, *_ in plan)

    def load(payload):
        if type(payload) is not dict or (strict and not names.issuperset(payload)):
            return None
        out = {}
        for name, kind, required, allow_none, choices in plan:
            if name in payload:
                value = payload[name]
                if (type(value) is kind and (choices is None or value in choices)) or (value is None and allow_none):
                    out[name] = value
                else:
                    return None
            elif required:
                return None
        return out
    return load


def _choices(validators, kind):
    """None for a field with no validator; for one `validate.OneOf` (exactly that class) whose
    choices are a list, tuple or set of values of exactly the field's type, those choices as a
    frozenset (for such values `value in choices` is what OneOf asks: a value outside goes through
    marshmallow, which gives its error); False for anything else (the schema is not mirrored)."""
    if not validators:
        return None
    if len(validators) != 1 or type(validators[0]) is not validate.OneOf:
        return False
    choices = validators[0].choices
    if type(choices) not in (list, tuple, set, frozenset) or any(type(c) is not kind for c in choices):
        return False
    return frozenset(choices)


REGISTRY = Registry()
