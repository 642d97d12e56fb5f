"""Leads service: Intake, deduplication, distribution, the pool, follow-ups, conversion, campaign ROI."""
import os
from dataclasses import replace

from crm_shared.config import Settings
from crm_shared.web import create_service_app

from .service import SERVICE

# a 50,000-row CSV is several megabytes; the platform's default body limit is 2 MB
IMPORT_BODY_BYTES = 32 * 1024 * 1024


def create_app(settings=None, clock=None, testing=False):
    if settings is None:
        settings = Settings.from_env(SERVICE.name)
        if "MAX_BODY_BYTES" not in os.environ:
            settings = replace(settings, max_body_bytes=IMPORT_BODY_BYTES)
    app = create_service_app(SERVICE, settings, clock, testing)
    _operation_level_path_parameters(app)
    return app


def _operation_level_path_parameters(app) -> None:
    """flask-smorest documents path parameters ({lead_id}) once on the path item; the platform's
    contract test reads every key of a path item as an operation, so each operation gets its own
    copy instead (the same OpenAPI meaning)."""
    for api in set(app.extensions["flask-smorest"]["blp_name_to_api"].values()):
        for item in api.spec._paths.values():
            common = item.pop("parameters", None) or []
            for op in item.values():
                if isinstance(op, dict) and common:
                    own = op.get("parameters", [])
                    taken = {(p.get("in"), p.get("name")) for p in own}
                    op["parameters"] = [p for p in common if (p.get("in"), p.get("name")) not in taken] + own
