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
    return create_service_app(SERVICE, settings, clock, testing)

