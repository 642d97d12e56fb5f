"""Message templates: Jinja2 in a sandbox. A template sees only the event's payload (and a few
helper values); it cannot reach attributes of Python objects (no `''.__class__`), call methods,
or import anything. Text is rendered without escaping, HTML (email) with autoescape."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime
from decimal import Decimal

from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT = 20_000


class TemplateError(ValueError):
    """A template that is invalid or unsafe, or failed to render with the given payload."""


class _Undefined(Undefined):
    """A payload field that is absent renders as nothing (optional fields are often left out);
    an unsafe attribute raises SecurityError whatever is done with it."""
    __slots__ = ()

    def __str__(self):
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return ""


class _PayloadOnlyEnvironment(SandboxedEnvironment):
    """Attribute syntax (`lead.name`) reads keys of the payload's dicts; no Python attribute is
    ever reachable, so neither `''.__class__` nor `payload.items` works."""

    def is_safe_attribute(self, obj, attr, value):
        return False

    def getattr(self, obj, attribute):
        if isinstance(obj, dict) and not attribute.startswith("_"):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, Undefined):
            return self.undefined(obj=obj, name=attribute)
        return self.unsafe_undefined(obj, attribute)

    def getitem(self, obj, argument):
        if isinstance(obj, dict) and not (isinstance(argument, str) and argument.startswith("_")):
            return obj[argument] if argument in obj else self.undefined(obj=obj, name=argument)
        if isinstance(obj, (list, tuple, str)) and isinstance(argument, (int, slice)):
            try:
                return obj[argument]
            except IndexError:
                return self.undefined(obj=obj, name=str(argument))
        if isinstance(obj, Undefined):
            return self.undefined(obj=obj, name=str(argument))
        return self.unsafe_undefined(obj, str(argument))

    def is_safe_callable(self, obj):
        return False


def _env(autoescape: bool) -> SandboxedEnvironment:
    env = _PayloadOnlyEnvironment(autoescape=autoescape, undefined=_Undefined, trim_blocks=True,
                                  lstrip_blocks=True)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), joiner(), namespace()
    return env


_TEXT = _env(False)
_HTML = _env(True)


def _unsafe_names(ast) -> list[str]:
    bad = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            bad.append(name)
    for node in ast.find_all(nodes.Call):
        bad.append("a function call")
    return bad


@lru_cache(maxsize=2048)
def check(source: str) -> None:
    """Refuse a template that does not parse or reaches for anything beyond the payload.
    (Cached: only templates that pass are remembered, since an exception is not cached.)"""
    try:
        ast = _TEXT.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
    bad = _unsafe_names(ast)
    if bad:
        raise TemplateError(f"unsafe template: {', '.join(sorted(set(bad)))} is not allowed (only payload fields)")


def plain(value):
    """Payload values as templates should see them: dicts, lists, strings and numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def render_one(source: str, context: dict, html: bool = False) -> str:
    return _render_plain(source, plain(context), html)


def _render_plain(source: str, values: dict, html: bool) -> str:
    """`render_one` with the context already through `plain`."""
    check(source)
    try:
        out = _compiled(source, html).render(**values)
    except SecurityError as exc:
        raise TemplateError(f"unsafe template: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(f"the payload lacks a field the template uses: {exc.message}") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a user template is the template's
        raise TemplateError(f"the template failed: {type(exc).__name__}: {exc}") from None
    if len(out) > MAX_OUTPUT:
        raise TemplateError(f"the rendered text is longer than {MAX_OUTPUT} characters")
    return out


@lru_cache(maxsize=2048)
def _compiled(source: str, html: bool):
    return (_HTML if html else _TEXT).from_string(source)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def html_document(body_html: str) -> str:
    paragraphs = "".join(f"<p>{line}</p>" for line in body_html.split("\n") if line.strip())
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
            f'<body style="font-family:sans-serif">{paragraphs}</body></html>')


def render(subject: str, body: str, context: dict) -> Rendered:
    """Subject and text body without escaping; the HTML body with every payload value escaped."""
    values = plain(context)  # once for the three
    subj = " ".join(_render_plain(subject, values, False).split())
    text = _render_plain(body, values, False).strip()
    html = html_document(_render_plain(body, values, True).strip())
    return Rendered(subj, text, html)

