"""JSON logs carrying the service name and the correlation id (and, with tracing on, the trace and
span ids)."""
from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

from . import context, tracing


class _ContextFilter(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = context.correlation_id.get()
        record.causation_id = context.causation_id.get()
        ids = tracing.log_ids()  # only when tracing is on: the line then names its trace and span
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


def configure(service: str, level: str | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_crm", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._crm = True  # type: ignore[attr-defined]
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(correlation_id)s %(causation_id)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
    ))
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
