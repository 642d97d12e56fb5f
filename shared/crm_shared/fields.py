"""marshmallow fields every service's API uses, so bad input is refused field by field."""
from __future__ import annotations

import re
from datetime import timezone

from marshmallow import ValidationError, fields

_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class Text(fields.String):
    """A string with a length limit (default 1,000), no NUL, control characters or lone surrogates
    (what broken UTF-8 decodes to), and surrounding white space trimmed."""

    def __init__(self, *args, max_length: int = 1000, min_length: int = 0, strip: bool = True, **kw):
        super().__init__(*args, **kw)
        self.max_length, self.min_length, self.strip = max_length, min_length, strip
        self.metadata.setdefault("maxLength", max_length)
        if min_length:
            self.metadata.setdefault("minLength", min_length)

    def _deserialize(self, value, attr, data, **kw):
        s = super()._deserialize(value, attr, data, **kw)
        if _BAD.search(s):
            raise ValidationError("Contains control characters or invalid Unicode.")
        if self.strip:
            s = s.strip()
        if len(s) > self.max_length:
            raise ValidationError(f"Longer than {self.max_length} characters.")
        if len(s) < self.min_length:
            raise ValidationError("Must not be empty." if self.min_length == 1 else f"Shorter than {self.min_length} characters.")
        return s


class Money(fields.Decimal):
    """Exact money: a Decimal, serialised as a string, never a float."""

    def __init__(self, *args, **kw):
        kw.setdefault("as_string", True)
        kw.setdefault("allow_nan", False)
        super().__init__(*args, **kw)


class Int(fields.Integer):
    """An integer that fits a 64-bit column: a larger one is refused field by field (422) instead
    of reaching the database driver, which cannot bind it (a 500)."""

    LOW, HIGH = -(2 ** 63), 2 ** 63 - 1

    def _validated(self, value):
        number = super()._validated(value)
        if number is not None and not self.LOW <= number <= self.HIGH:
            raise ValidationError("Out of range.")
        return number


class UtcDateTime(fields.DateTime):
    """A datetime out as ISO 8601 with its offset; a naive one (SQLite gives them back naive) is UTC."""

    def _serialize(self, value, attr, obj, **kw):
        if value is not None and getattr(value, "tzinfo", 1) is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kw)
