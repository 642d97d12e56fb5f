"""The notify service's own configuration. Read when a runtime is built, never at import time:
from `Settings.extra` (tests set it explicitly) over the environment.

| variable | default | meaning |
|---|---|---|
| SMTP_URL | (none: email fails and is retried) | smtp://user:pass@host:port (add ?starttls=1), smtps://... for TLS from the start |
| SMTP_CA_FILE | (system CAs) | PEM file of the CA that signed the SMTP server's certificate (STARTTLS/smtps) |
| NOTIFY_MAIL_FROM | CRM <noreply@crm.local> | the From header |
| SMS_URL | file://var/sms.jsonl | file://PATH (development sink, one JSON line per text) or https://provider/send |
| SMS_KEY / SMS_SECRET | - | the HTTP provider's account key and signing secret |
| NOTIFY_WEBHOOK_ALLOW_PRIVATE | 0 | 1 allows webhooks to loopback/private/link-local addresses (development, tests) |
| NOTIFY_WEBHOOK_ALLOW_NETWORKS | - | comma-separated networks allowed although private, e.g. `127.0.0.1/32` for a local receiver, `10.8.0.0/16` for an intranet; checked at registration and at every connect |
| NOTIFY_WEBHOOK_TIMEOUT | 5 | seconds per HTTP try (webhooks, robots, SMS provider) |
| NOTIFY_RETRY_BASE_SECONDS | 60 | first retry delay; doubles each try, at most 6 h apart |
| NOTIFY_RETRY_MAX_ATTEMPTS | 12 | tries before a delivery fails for good (webhooks also stop after 24 h) |
| NOTIFY_WEBHOOK_DISABLE_AFTER | 1 | deliveries failed for good (all their tries used, or 24 h gone) in a row before a webhook is disabled |
| NOTIFY_THROTTLE_MAX / NOTIFY_THROTTLE_WINDOW_SECONDS | 20 / 3600 | messages per recipient per channel per window; the rest go to the next digest |
| NOTIFY_HOLIDAYS | built-in (Spring Festival, Mid-Autumn, National Day) | JSON {key: {"name": {"zh-CN":..,"en":..}, "dates": [..] or "every_year": "MM-DD"}} |
| NOTIFY_SSE_MAX_SECONDS / NOTIFY_SSE_POLL_SECONDS / NOTIFY_SSE_HEARTBEAT_SECONDS | 25 / 1 / 10 | the inbox stream (25 s stays under gunicorn's 30 s worker timeout; raise it with threaded workers) |
| NOTIFY_DISPATCH_BATCH | 200 | deliveries claimed per dispatch run |
| NOTIFY_DISPATCH_LEASE_SECONDS | 300 | how long a claimed delivery stays claimed: after a worker crash its claimed messages go out when this has passed |
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .channels.net import parse_networks

from .domain.rules import DEFAULT_HOLIDAYS


def _get(settings, env, name, default=None):
    extra = getattr(settings, "extra", None) or {}
    if name in extra:
        return extra[name]
    return env.get(name, default)


def _flag(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class NotifyConfig:
    smtp_url: str | None
    smtp_ca_file: str | None
    mail_from: str
    sms_url: str
    sms_key: str | None
    sms_secret: str | None
    allow_private: bool
    allow_networks: tuple
    http_timeout: float
    retry_base_seconds: float
    retry_max_attempts: int
    webhook_give_up_hours: float
    webhook_disable_after: int
    throttle_max: int
    throttle_window_seconds: int
    holidays: dict
    sse_max_seconds: float
    sse_poll_seconds: float
    sse_heartbeat_seconds: float
    dispatch_batch: int
    dispatch_lease_seconds: float = 300.0

    @classmethod
    def load(cls, settings=None, env=None) -> "NotifyConfig":
        e = os.environ if env is None else env
        g = lambda name, default=None: _get(settings, e, name, default)  # noqa: E731
        holidays = g("NOTIFY_HOLIDAYS")
        return cls(
            smtp_url=g("SMTP_URL") or None,
            smtp_ca_file=g("SMTP_CA_FILE") or None,
            mail_from=g("NOTIFY_MAIL_FROM", "CRM <noreply@crm.local>"),
            sms_url=g("SMS_URL", "file://" + os.path.join(e.get("CRM_DATA_DIR", "var"), "sms.jsonl")),
            sms_key=g("SMS_KEY"), sms_secret=g("SMS_SECRET"),
            allow_private=_flag(g("NOTIFY_WEBHOOK_ALLOW_PRIVATE", "0")),
            allow_networks=parse_networks(g("NOTIFY_WEBHOOK_ALLOW_NETWORKS", "")),
            http_timeout=float(g("NOTIFY_WEBHOOK_TIMEOUT", 5)),
            retry_base_seconds=float(g("NOTIFY_RETRY_BASE_SECONDS", 60)),
            retry_max_attempts=int(g("NOTIFY_RETRY_MAX_ATTEMPTS", 12)),
            webhook_give_up_hours=float(g("NOTIFY_WEBHOOK_GIVE_UP_HOURS", 24)),
            webhook_disable_after=int(g("NOTIFY_WEBHOOK_DISABLE_AFTER", 1)),
            throttle_max=int(g("NOTIFY_THROTTLE_MAX", 20)),
            throttle_window_seconds=int(g("NOTIFY_THROTTLE_WINDOW_SECONDS", 3600)),
            holidays=(json.loads(holidays) if isinstance(holidays, str) else holidays) or DEFAULT_HOLIDAYS,
            sse_max_seconds=float(g("NOTIFY_SSE_MAX_SECONDS", 25)),
            sse_poll_seconds=float(g("NOTIFY_SSE_POLL_SECONDS", 1)),
            sse_heartbeat_seconds=float(g("NOTIFY_SSE_HEARTBEAT_SECONDS", 10)),
            dispatch_batch=int(g("NOTIFY_DISPATCH_BATCH", 200)),
            dispatch_lease_seconds=float(g("NOTIFY_DISPATCH_LEASE_SECONDS", 300)),
        )


def config_of(runtime) -> NotifyConfig:
    """One NotifyConfig per runtime, built on first use."""
    cfg = runtime.__dict__.get("_notify_config")
    if cfg is None:
        cfg = NotifyConfig.load(runtime.settings)
        runtime.__dict__["_notify_config"] = cfg
    return cfg
