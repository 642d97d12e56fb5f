"""A response schema's `dump` without marshmallow's per-field lookup machinery, for plain dicts.

marshmallow's `Schema.dump` of a dict goes, for every field, through `_serialize` → `Field.serialize`
→ `Field.get_value` → the schema's `get_attribute` → `utils.get_value` → `_get_value_for_key` (a
`hasattr`, a subscript) before the field's own `_serialize` formats the value: about 2.5 µs a
field, 80 µs for a lead's 33 fields. `compile_dump(schema)` does the same work with one
`dict.get` and the field's own `_serialize` per field, in the schema's field order: the formatting
(strings, ids, datetimes, nested schemas) is still marshmallow's, only the lookup is skipped.

It is used only where it gives what `Schema.dump` gives, decided once per schema instance:
- the schema class does not override `dump`, `_serialize` or `get_attribute`, and has no
  `pre_dump` / `post_dump` hooks;
- no field overrides `serialize` or `get_value`, every field reads its value (`_CHECK_ATTRIBUTE`),
  and the key it reads (its `attribute`, else its name) has no "." (a path) and is not an attribute
  of `dict` (`items`, `keys`...: marshmallow falls back to `getattr` for a key a dict lacks);
- per call, the object is exactly a `dict` (a mapping of another type, a row or an object goes
  through `Schema.dump`).
Otherwise `compile_dump` returns None, or the compiled dump calls the schema's own `dump`. A key
the dict lacks is handled as marshmallow does: the field's `dump_default`, and no output key when
that is missing too; `data_key` names the output key."""
from __future__ import annotations

from marshmallow import Schema, fields
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import missing

_DICT_ATTRS = frozenset(dir(dict))


def compile_dump(schema: Schema):
    """A function with `Schema.dump`'s signature and answers (see the module's doc), or None."""
    cls = type(schema)
    if (cls.dump is not Schema.dump or cls._serialize is not Schema._serialize
            or cls.get_attribute is not Schema.get_attribute or schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]):
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        fcls = type(field)
        key = name if field.attribute is None else field.attribute
        if (fcls.serialize is not fields.Field.serialize or fcls.get_value is not fields.Field.get_value
                or not field._CHECK_ATTRIBUTE or not isinstance(key, str) or "." in key or key in _DICT_ATTRS):
            return None
        plan.append((key, name if field.data_key is None else field.data_key, field._serialize, field.dump_default,
                     name))
    plan = tuple(plan)
    dict_class, slow = schema.dict_class, schema.dump

    def one(obj):
        out = dict_class()
        get = obj.get
        for key, out_key, serialize, default, attr in plan:
            value = get(key, missing)
            if value is missing:
                value = default() if callable(default) else default
                if value is missing:
                    continue
            out[out_key] = serialize(value, attr, obj)
        return out

    def dump(obj, *, many: bool | None = None):
        many = schema.many if many is None else bool(many)
        if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:  # hooks added to the class later
            return slow(obj, many=many)
        if many and obj is not None:
            if isinstance(obj, (list, tuple)) and all(type(o) is dict for o in obj):
                return [one(o) for o in obj]
            return slow(obj, many=many)
        if type(obj) is dict:
            return one(obj)
        return slow(obj, many=many)

    return dump


def speed_up(schema: Schema) -> Schema:
    """The same schema instance, its `dump` replaced by the compiled one when it qualifies."""
    fast = compile_dump(schema)
    if fast is not None:
        schema.dump = fast
    return schema
