"""Configuration, read from environment variables (documented in the README's table).

Nothing is read at import time: `Settings.from_env()` is called by the application factory or
the worker, and tests build `Settings` directly."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

DEV_JWT_SECRET = "dev-only-secret-do-not-use-in-production"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str
    bus_url: str = "sqlite:///var/bus.db"
    bus_namespace: str = "crm"
    env: str = "development"
    jwt_secret: str = DEV_JWT_SECRET
    # HS256 rotation grace: tokens signed with this one are still accepted (never used to sign)
    jwt_previous_secret: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # retry delays (ms) before a failed message is tried again; one more failure dead-letters it
    retry_delays_ms: tuple[int, ...] = (1000, 5000, 30000)
    prefetch: int = 100
    consume_batch: int = 50
    relay_batch: int = 2000
    relay_poll_ms: int = 200
    # the embedded (SQLite) bus: how often an idle consumer checks, without a lock, for new messages
    bus_poll_ms: float = 2
    lease_seconds: int = 60
    delivery_limit: int = 20
    # published outbox rows / processed event ids older than this are deleted (0: keep for ever);
    # the inbox must remember longer than any event can come again (docs/OPERATIONS.md, "Retention")
    outbox_retention_days: float = 7
    inbox_retention_days: float = 30
    max_body_bytes: int = 2 * 1024 * 1024
    log_level: str = "INFO"
    clock_file: str | None = None  # development/tests: the shared, movable clock (crm_shared.clock.FileClock)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, env: dict | None = None, **overrides) -> "Settings":
        e = os.environ if env is None else env
        data_dir = e.get("CRM_DATA_DIR", "var")
        db_default = f"sqlite:///{data_dir}/{service}.db"
        s = cls(
            service=service,
            database_url=e.get("DATABASE_URL", db_default),
            bus_url=e.get("BUS_URL", f"sqlite:///{data_dir}/bus.db"),
            bus_namespace=e.get("BUS_NAMESPACE", "crm"),
            env=e.get("CRM_ENV", "development"),
            jwt_secret=e.get("CRM_JWT_SECRET", DEV_JWT_SECRET),
            jwt_previous_secret=e.get("CRM_JWT_PREVIOUS_SECRET") or None,
            jwks_url=e.get("CRM_JWKS_URL") or None,
            jwt_audience=e.get("CRM_JWT_AUDIENCE") or None,
            jwt_issuer=e.get("CRM_JWT_ISSUER") or None,
            retry_delays_ms=_ints(e.get("BUS_RETRY_DELAYS_MS", "1000,5000,30000")),
            prefetch=int(e.get("BUS_PREFETCH", "100")),
            consume_batch=int(e.get("BUS_CONSUME_BATCH", "50")),
            relay_batch=int(e.get("OUTBOX_BATCH", "2000")),
            relay_poll_ms=int(e.get("OUTBOX_POLL_MS", "200")),
            bus_poll_ms=float(e.get("BUS_POLL_MS", "2")),
            lease_seconds=int(e.get("BUS_LEASE_SECONDS", "60")),
            delivery_limit=int(e.get("BUS_DELIVERY_LIMIT", "20")),
            max_body_bytes=int(e.get("MAX_BODY_BYTES", str(2 * 1024 * 1024))),
            outbox_retention_days=float(e.get("OUTBOX_RETENTION_DAYS", "7")),
            inbox_retention_days=float(e.get("INBOX_RETENTION_DAYS", "30")),
            log_level=e.get("LOG_LEVEL", "INFO"),
            clock_file=e.get("CRM_CLOCK_FILE") or None,
        )
        return replace(s, **overrides) if overrides else s

    def check(self) -> None:
        """Refuse settings that must never reach production."""
        if self.inbox_retention_days and (not self.outbox_retention_days
                                          or self.inbox_retention_days <= self.outbox_retention_days):
            # a producer may re-publish (`crm outbox republish`) any event its outbox still holds:
            # a consumer that forgot having processed it would apply it twice
            raise RuntimeError("INBOX_RETENTION_DAYS must be longer than OUTBOX_RETENTION_DAYS "
                               "(or 0: keep the inbox for ever)")
        if self.env == "production":
            if self.clock_file:
                raise RuntimeError("CRM_ENV=production refuses CRM_CLOCK_FILE: the movable clock is for development and tests")
            if not self.jwks_url and (not self.jwt_secret or self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32):
                raise RuntimeError(
                    "CRM_ENV=production refuses the development JWT secret: set CRM_JWKS_URL "
                    "(RS256 from the identity provider) or a CRM_JWT_SECRET of 32+ characters")
            if self.jwt_previous_secret is not None and (self.jwt_previous_secret == DEV_JWT_SECRET
                                                         or len(self.jwt_previous_secret) < 32):
                raise RuntimeError("CRM_ENV=production refuses a CRM_JWT_PREVIOUS_SECRET shorter than 32 "
                                   "characters or equal to the development secret")
            if self.database_url.startswith("sqlite"):
                raise RuntimeError("CRM_ENV=production needs DATABASE_URL pointing at PostgreSQL")
