from .envelope import Envelope
from .registry import REGISTRY, EventValidationError, UnknownEventType

__all__ = ["Envelope", "REGISTRY", "EventValidationError", "UnknownEventType"]

from . import catalogue  # noqa: E402,F401  (registers the schemas)
