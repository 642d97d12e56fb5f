"""The application factory every service's `create_app` calls. Builds everything inside it:
runtime (engine, sessions, bus), blueprints, error handling, auth, request ids, metrics, docs."""
from __future__ import annotations

import json
import os
import time
import uuid

from flask import Flask, g, jsonify, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import INCLUDE, Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.core import GaugeMetricFamily
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from .. import context, db, logs, metrics, tracing
from ..clock import Clock
from ..config import Settings
from ..runtime import Runtime
from ..service import ServiceDefinition
from . import auth, errors

PUBLIC = {"healthz", "readyz", "metrics", "static"}
PROBLEM_JSON = "application/problem+json"


class ProblemSchema(Schema):
    """RFC 7807 problem document (web/errors.py); a problem may carry more members (e.g. `existing`)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"description": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(metadata={"description": "field -> messages (422)"})


class ProblemApi(Api):
    """flask-smorest's Api with the error responses documented as what errors.py sends:
    application/problem+json with the problem schema (instead of flask-smorest's own error body)."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, **kw):
        super()._init_spec(**kw)
        from ..fields import Money
        # Money travels as a JSON string ("1234.50"), not the JSON number apispec would say
        self.register_field(Money, "string", "decimal")
        self.ma_plugin.converter.add_attribute_function(_decimal_pattern)

    def _register_responses(self):
        import http
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def _decimal_pattern(self, field, ret, **kwargs):
    """Money is documented as a decimal string (its Range bounds become x-minimum/x-maximum)."""
    from ..fields import Money
    return {"pattern": r"^-?[0-9]+(\.[0-9]+)?$"} if isinstance(field, Money) else {}


class BoundedInt(IntegerConverter):
    """`<int:...>` in a route, but at most 2^63 - 1: a larger id is no id of ours (404), instead of an
    integer the database driver cannot bind (a 500 on SQLite)."""

    def __init__(self, map, fixed_digits=0, min=None, max=2 ** 63 - 1, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_service_app(definition: ServiceDefinition, settings: Settings | None = None, clock: Clock | None = None,
                       testing: bool = False) -> Flask:
    settings = settings or Settings.from_env(definition.name)
    if not testing:
        logs.configure(definition.name, settings.log_level)
    runtime = Runtime(definition, settings, clock)
    app = Flask(definition.name)
    app.url_map.converters["int"] = BoundedInt
    app.config.update(
        TESTING=testing,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE=definition.title, API_VERSION=definition.version, OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json", OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
        API_SPEC_OPTIONS={"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearerAuth": []}]},
        CRM_PUBLIC_ENDPOINTS=set(PUBLIC),
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False
    app.extensions["crm"] = {"runtime": runtime, "verifier": auth.TokenVerifier(settings)}
    if os.environ.get("CRM_TRUST_PROXY") == "1":
        # behind the gateway: X-Forwarded-For/Proto/Host/Prefix from exactly one proxy hop, so
        # /leads/docs finds /leads/openapi.json. Off by default: the headers are spoofable.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)
    api = ProblemApi(app)
    for bp in definition.blueprints():
        api.register_blueprint(bp)
    app.config["CRM_PUBLIC_ENDPOINTS"] |= {e for e in app.view_functions if e.startswith("api-docs.")}
    errors.register(app)
    _register_hooks(app, definition.name, settings)
    _register_ops_endpoints(app, runtime)
    tracing.instrument_app(app, definition.name)  # no-op unless tracing is on
    return app


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["crm"]["runtime"]


def _register_hooks(app: Flask, service: str, settings: Settings) -> None:
    @app.before_request
    def _start():
        # the request and g objects behind Flask's proxies, looked up once (each proxy access is a
        # context-variable lookup; the hooks of a request made about 30)
        req, gg = request._get_current_object(), g._get_current_object()
        gg.started = time.perf_counter()
        rid = req.headers.get("X-Request-ID", "")
        gg.request_id = rid if 0 < len(rid) <= 128 and rid.isprintable() else str(uuid.uuid4())
        gg.ctx_token = context.correlation_id.set(gg.request_id)
        length = req.content_length
        if length and length > settings.max_body_bytes:
            raise RequestEntityTooLarge()
        if req.method in ("POST", "PUT", "PATCH") and req.mimetype == "application/json":
            raw = req.get_data(cache=True)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise errors.Problem(422, "Unprocessable Entity", "The request body is not valid UTF-8.",
                                     errors={"_body": [f"Invalid UTF-8 at byte {exc.start}."]})
            try:
                body = json.loads(text)
            except RecursionError:
                raise errors.Problem(400, "Bad Request", "The JSON body is nested too deeply.")
            except ValueError:
                raise errors.Problem(400, "Bad Request", "The request body is not valid JSON.")
            # what webargs' json.loads of the same text gives: its parser takes it from here
            # (crm_shared.web.blueprint) instead of parsing the body a second time
            gg.json_body = body
        auth.authenticate()

    bound: dict = {}  # (method, route, status) -> the two metric children, bound once per process

    @app.after_request
    def _finish(resp):
        req, gg = request._get_current_object(), g._get_current_object()
        resp.headers["X-Request-ID"] = gg.get("request_id", "")
        rule = req.url_rule
        endpoint = rule.rule if rule else "unmatched"
        key = (req.method, endpoint, resp.status_code)
        children = bound.get(key)
        if children is None:
            children = bound.setdefault(key, (metrics.HTTP_REQUESTS.labels(service, *key),
                                              metrics.HTTP_LATENCY.labels(service, *key[:2])))
        children[0].inc()
        if "started" in gg:
            children[1].observe(time.perf_counter() - gg.started)
        return resp

    @app.teardown_request
    def _teardown(_exc):
        uow = g.pop("uow", None)
        if uow is not None:
            uow.__exit__(None, None, None)
        token = g.pop("ctx_token", None)
        if token is not None:
            context.correlation_id.reset(token)


class _BacklogCollector:
    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def collect(self):
        from ..outbox import Relay
        fam = GaugeMetricFamily("crm_outbox_backlog", "Outbox rows not yet confirmed by the broker", labels=["service"])
        try:
            fam.add_metric([self.rt.name], Relay(self.rt).backlog())
        except Exception:  # the database is down: say nothing rather than fail the scrape
            pass
        yield fam


def _register_ops_endpoints(app: Flask, runtime: Runtime) -> None:
    backlog_registry = CollectorRegistry(auto_describe=False)
    backlog_registry.register(_BacklogCollector(runtime))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", service=runtime.name)

    @app.get("/readyz")
    def readyz():
        checks = {}
        for name, check in (("database", lambda: db.ping(runtime.engine)), ("bus", runtime.bus.ping)):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                checks[name] = f"unavailable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        resp = jsonify(status="ready" if ok else "not ready", checks=checks)
        resp.status_code = 200 if ok else 503
        if not ok:
            resp.headers["Retry-After"] = "5"
        return resp

    @app.get("/metrics", endpoint="metrics")
    def metrics_view():
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess
            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
        else:
            reg = DEFAULT_REGISTRY
        body = generate_latest(reg) + generate_latest(backlog_registry)
        return body, 200, {"Content-Type": CONTENT_TYPE_LATEST}


def unit_of_work():
    """The request's unit of work (opened on first use, closed at the end of the request)."""
    gg = g._get_current_object()
    uow = gg.get("uow")
    if uow is None:
        from flask import current_app
        uow = gg.uow = runtime_of(current_app).uow().__enter__()
    return uow
