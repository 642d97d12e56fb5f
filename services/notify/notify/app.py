"""Notify service: Events become messages by email, SMS, webhook and in-app inbox."""
from crm_shared.web import create_service_app

from .service import SERVICE


def create_app(settings=None, clock=None, testing=False):
    return create_service_app(SERVICE, settings, clock, testing)
