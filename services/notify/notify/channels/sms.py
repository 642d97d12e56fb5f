"""SMS through a provider adapter. `file://PATH` (development) appends one JSON line per text;
an http(s) URL posts to a provider: JSON {"to", "text", "ref"} with the account key and an
HMAC-SHA256 signature of "timestamp.body" under the account secret in headers."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time

from . import ChannelDown, SendError

_lock = threading.Lock()


class FileSink:
    def __init__(self, path: str):
        self.path = path

    def send(self, to: str, text: str, ref: str) -> None:
        line = json.dumps({"to": to, "text": text, "ref": ref, "at": time.time()}, ensure_ascii=False)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with _lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise ChannelDown(f"SMS sink {self.path} not writable: {exc}") from None


class HttpProvider:
    def __init__(self, url: str, key: str | None, secret: str | None, http):
        self.url, self.key, self.secret, self.http = url, key, secret, http

    def send(self, to: str, text: str, ref: str) -> None:
        body = json.dumps({"to": to, "text": text, "ref": ref}, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-SMS-Key": self.key or "", "X-SMS-Timestamp": ts}
        if self.secret:
            headers["X-SMS-Signature"] = hmac.new(self.secret.encode(), ts.encode() + b"." + body,
                                                  hashlib.sha256).hexdigest()
        try:
            r = self.http.post(self.url, body, headers)
        except OSError as exc:
            raise ChannelDown(f"SMS provider unreachable: {exc}") from None
        if r.status >= 500 or r.status == 429:
            raise SendError(f"SMS provider answered {r.status}")
        if r.status >= 400:
            raise SendError(f"SMS provider refused the text: {r.status} {r.body[:200]!r}", permanent=True)


def provider(url: str, key, secret, http):
    if url.startswith("file://"):
        return FileSink(url[len("file://"):])
    return HttpProvider(url, key, secret, http)


def valid_mobile(number: str) -> bool:
    digits = number.lstrip("+")
    return digits.isdigit() and 6 <= len(digits) <= 20
