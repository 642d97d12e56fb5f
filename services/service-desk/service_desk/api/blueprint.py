"""flask-smorest's Blueprint, documenting path parameters on each operation instead of on the
path item. Both are valid OpenAPI; tests/test_services.py reads every key of a path item as an
operation, so a path-level `parameters` list would trip it."""
from __future__ import annotations

import flask_smorest


class Blueprint(flask_smorest.Blueprint):
    def register_views_in_doc(self, api, app, spec, *, name, parameters):
        super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
        for item in spec._paths.values():
            shared = item.pop("parameters", None)
            if not shared:
                continue
            for key, op in item.items():
                if isinstance(op, dict) and key in ("get", "put", "post", "patch", "delete"):
                    own = op.get("parameters", [])
                    names = {(p.get("in"), p.get("name")) for p in own if isinstance(p, dict)}
                    op["parameters"] = [p for p in shared if (p.get("in"), p.get("name")) not in names] + own
