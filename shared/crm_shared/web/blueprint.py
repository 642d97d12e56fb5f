"""flask-smorest's Blueprint with one schema instance per `@blp.arguments(SchemaClass)`.

webargs instantiates a schema given as a class on every request (`argmap()`: the declared fields
deep-copied, about 50 µs for the leads intake schema); flask-smorest already reuses its response
schemas. A marshmallow 4 schema keeps no per-call state (no `context`), so one instance per class
serves every request and thread, as it does for the responses. The OpenAPI document is unchanged:
the decorator still receives the class.

Response schemas: `response()` resolves the schema instance as flask-smorest does and gives it the
compiled dump of `fastdump.py` (the same answers, without marshmallow's per-field lookups); the
OpenAPI document is built from the same instance, unchanged."""
from __future__ import annotations

import flask_smorest
from flask import g, has_request_context
from marshmallow import Schema
from flask_smorest.utils import resolve_schema_instance
from webargs.flaskparser import FlaskParser

from .fastdump import speed_up


_UNPARSED = object()


class SchemaReusingParser(FlaskParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._instances: dict[type, Schema] = {}

    def _get_schema(self, argmap, req):
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._instances.get(argmap)
            if schema is None:
                schema = self._instances.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req):
        """The JSON body the request hook parsed already (crm_shared.web.app: `json.loads` of the
        same UTF-8 text, as webargs does), else webargs' own parse (other JSON mimetypes)."""
        if req.mimetype == "application/json" and has_request_context():
            body = g.get("json_body", _UNPARSED)
            if body is not _UNPARSED:
                return body
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = SchemaReusingParser()

    def response(self, status_code, schema=None, **kwargs):
        if schema is not None and not isinstance(schema, (str, dict)):
            schema = speed_up(resolve_schema_instance(schema))
        return super().response(status_code, schema, **kwargs)
