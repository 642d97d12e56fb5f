"""`crm demo`: realistic sample data walked through the whole flow of a RUNNING platform, through
the services' HTTP APIs only (as the department frontends would). Also the small HTTP client the
end-to-end tests use."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import requests

from .config import Settings


class ApiError(AssertionError):
    def __init__(self, method, url, status, body):
        super().__init__(f"{method} {url} -> {status}: {body}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class User:
    id: str
    name: str
    roles: tuple[str, ...]
    team: str | None = None
    lang: str = "zh-CN"
    email: str | None = None
    mobile: str | None = None


class Api:
    """Calls the services as a given user (a development token per user, signed with the
    platform's CRM_JWT_SECRET)."""

    def __init__(self, urls: dict[str, str], secret: str | None = None, timeout: float = 15):
        self.urls = urls
        self.secret = secret or Settings.from_env("cli").jwt_secret
        self.timeout = timeout
        self.http = requests.Session()
        self._tokens: dict[str, str] = {}

    def token(self, user: User) -> str:
        if user.id not in self._tokens:
            from .web.auth import dev_token
            self._tokens[user.id] = dev_token(self.secret, user.id, user.name, list(user.roles), user.team, user.lang,
                                              timedelta(hours=12))
        return self._tokens[user.id]

    def call(self, user: User | None, method: str, service: str, path: str, *, json=None, params=None,
             expect=(200, 201, 202, 204)):
        url = self.urls[service] + path
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user is not None else {}
        r = self.http.request(method, url, json=json, params=params, headers=headers, timeout=self.timeout)
        body = r.json() if r.content and "json" in r.headers.get("Content-Type", "") else r.text
        if expect is not None and r.status_code not in ((expect,) if isinstance(expect, int) else expect):
            raise ApiError(method, url, r.status_code, body)
        return body

    def get(self, user, service, path, **kw):
        return self.call(user, "GET", service, path, **kw)

    def post(self, user, service, path, json=None, **kw):
        return self.call(user, "POST", service, path, json=json if json is not None else {}, **kw)

    def put(self, user, service, path, json=None, **kw):
        return self.call(user, "PUT", service, path, json=json, **kw)

    def patch(self, user, service, path, json=None, **kw):
        return self.call(user, "PATCH", service, path, json=json, **kw)


def wait_for(fetch, timeout: float = 30.0, interval: float = 0.2, what: str = "it"):
    """Poll `fetch()` until it returns something truthy; its last value otherwise, in the error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fetch()
        except ApiError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
