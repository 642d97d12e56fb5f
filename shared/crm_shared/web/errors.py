"""RFC 7807 problem+json for every error: 422 field by field, 400 for malformed JSON, 401, 403,
404, 409, 503 with Retry-After when the database is down. Never a stack trace, never a 500 page."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..inbox import is_transient

log = logging.getLogger(__name__)


class Problem(Exception):
    """Raise from domain or view code to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str | None = None, **extra):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def Conflict(detail: str, **extra) -> Problem:
    return Problem(409, "Conflict", detail, **extra)


def NotFound(detail: str = "No such resource.") -> Problem:
    return Problem(404, "Not Found", detail)


def Forbidden(detail: str = "You may not do this.") -> Problem:
    return Problem(403, "Forbidden", detail)


def problem(status: int, title: str, detail: str | None = None, headers: dict | None = None, **extra):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update(extra)
    resp = jsonify(_string_keys(body))
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _string_keys(value):
    """marshmallow keys a list item's errors by its index: JSON keys are strings, and mixed
    int/str keys cannot even be sorted by the JSON encoder."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_string_keys(v) for v in value]
    return value


def _flatten(messages) -> dict:
    """webargs nests errors by location ({"json": {...}}); the client wants the fields."""
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "files", "headers", "path", "view_args"}:
        merged = {}
        for loc, errs in messages.items():
            if isinstance(errs, dict):
                merged.update(errs)
            else:
                merged[f"_{loc}"] = errs
        return merged
    return messages if isinstance(messages, dict) else {"_schema": messages}


_WHERE = {"json": "The request body has invalid fields.", "form": "The request body has invalid fields.",
          "files": "The request body has invalid fields.", "query": "The query string has invalid parameters.",
          "headers": "The request has invalid headers.", "path": "The request path has invalid parameters.",
          "view_args": "The request path has invalid parameters."}


def _invalid_detail(messages) -> str:
    """Say where the invalid fields are: the body, the query string, or several places."""
    if isinstance(messages, dict) and messages and set(messages) <= set(_WHERE):
        details = {_WHERE[loc] for loc in messages}
        if len(details) == 1:
            return details.pop()
        return "The request has invalid fields (" + ", ".join(sorted(messages)) + ")."
    return "The request body has invalid fields."


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return problem(exc.status, exc.title, exc.detail, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code == 422:
            messages = (getattr(exc, "data", None) or {}).get("messages") or {}
            return problem(422, "Unprocessable Entity", _invalid_detail(messages), errors=_flatten(messages))
        if exc.code == 400:
            return problem(400, "Bad Request", "The request body is not valid JSON."
                           if request.mimetype == "application/json" else (exc.description or "Bad request."))
        headers = {"WWW-Authenticate": 'Bearer realm="crm"'} if exc.code == 401 else None
        return problem(exc.code or 500, exc.name, exc.description, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_transient(exc):
            log.warning("database unavailable", extra={"error": str(exc)[:500]})
            return problem(503, "Service Unavailable", "The service's database is unreachable; try again shortly.",
                           headers={"Retry-After": "5"})
        if isinstance(exc, OverflowError):  # a number no column holds, from a path the schemas do not cover
            return problem(422, "Unprocessable Entity", "A number in the request is out of range.")
        log.exception("unhandled error")
        return problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged.")
