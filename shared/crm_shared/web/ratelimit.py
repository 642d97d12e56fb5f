"""Per-client-IP rate limits for the public (unauthenticated) endpoints: web-form intake, CSAT links.

A fixed window counted in the service's own database (`rate_limits`, one upserted row per scope,
client and window), so the limit is one limit whatever serves the request: every gunicorn worker
process and thread, and every replica in production (they share the PostgreSQL database). In the
embedded default the SQLite file is shared by the worker processes the same way. An in-process
limiter (flask-limiter's default memory storage) would grant WEB_CONCURRENCY x replicas times the
limit; its shared storages (Redis, Memcached, MongoDB) are servers this platform does not run.

The client is `request.remote_addr`: the socket's peer, or with CRM_TRUST_PROXY=1 the address the
gateway put in X-Forwarded-For (ProxyFix, one hop; see web/app.py). A client cannot dodge the limit
by sending X-Forwarded-For itself unless the operator trusts the proxy.

A request that carries a valid token of an internal caller (role `service` or `admin`) is not
counted: internal callers are limited by nobody's web form.

Limits are `N/second`, `N/minute` or `N/hour`, from Settings.extra or the environment
(e.g. LEADS_INTAKE_RATE_LIMIT=30/minute); `0` turns a limit off. Over the limit: 429
problem+json with Retry-After (seconds)."""
from __future__ import annotations

import functools
import os

from flask import current_app, request
from sqlalchemy import delete

from .errors import Problem

UNITS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600}
EXEMPT_ROLES = ("service", "admin")


def parse(text: str) -> tuple[int, int]:
    """"30/minute" -> (30, 60); "0" -> (0, 1) (off). ValueError on anything else."""
    text = text.strip()
    if text == "0":
        return 0, 1
    count, _, unit = text.partition("/")
    n, seconds = int(count), UNITS[unit.strip().lower()] if unit.strip().lower() in UNITS else None
    if seconds is None or n < 0:
        raise ValueError(f"a rate limit is N/second, N/minute or N/hour (or 0), not {text!r}")
    return n, seconds


def _setting(name: str, default: str) -> tuple[int, int]:
    from .app import runtime_of
    extra = runtime_of(current_app).settings.extra or {}
    return parse(str(extra.get(name) or os.environ.get(name) or default))


def _internal_caller() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        user = current_app.extensions["crm"]["verifier"].verify(token.strip())
    except Exception:  # noqa: BLE001 - a bad token is simply not an internal caller
        return False
    return user.has(*EXEMPT_ROLES)


def check(scope: str, setting: str, default: str) -> None:
    """Count this request against its client's window; Problem(429) past the limit."""
    from .app import runtime_of
    limit, seconds = _setting(setting, default)
    if limit == 0 or _internal_caller():
        return
    rt = runtime_of(current_app)
    table = rt.definition.metadata.tables["rate_limits"]
    now = rt.clock.now().timestamp()
    window = int(now // seconds)
    client = (request.remote_addr or "unknown")[:64]
    if rt.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(scope=scope, client=client, window=window, hits=1)
    stmt = stmt.on_conflict_do_update(index_elements=["scope", "client", "window"],
                                      set_={"hits": table.c.hits + 1}).returning(table.c.hits)
    with rt.engine.begin() as conn:  # its own transaction: a refused request still counts
        hits = conn.execute(stmt).scalar_one()
        if hits == 1:  # the first hit of a window clears this client's old windows
            conn.execute(delete(table).where(table.c.scope == scope, table.c.client == client,
                                             table.c.window < window - 1))
    if hits > limit:
        retry = max(1, int((window + 1) * seconds - now + 0.999))
        raise Problem(429, "Too Many Requests", f"More than {limit} requests in {seconds} s from this address; "
                      f"try again in {retry} s.", headers={"Retry-After": str(retry)})


def limited(scope: str, setting: str, default: str):
    """Decorate a public view (function or MethodView method): `@limited("intake", "X_RATE_LIMIT", "30/minute")`."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            check(scope, setting, default)
            return fn(*a, **kw)
        return wrapper
    return deco
