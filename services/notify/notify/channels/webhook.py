"""Webhooks: a generic signed JSON POST, and the work-chat group robots (WeCom, DingTalk, Feishu)
each in its own message format and signing scheme.

Generic webhook signature (documented for receivers in the service README):
  X-CRM-Timestamp: unix seconds when the try was made
  X-CRM-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<raw body>"))
  X-CRM-Event / X-CRM-Delivery: the event type and the delivery id (the same on every retry)
A receiver recomputes the HMAC over the raw body, compares in constant time, refuses timestamps
more than 5 minutes from its clock (replay) and ignores a delivery id it has already processed."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote

from . import SendError
from .net import BlockedAddress

REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None,
           window: int = REPLAY_WINDOW_SECONDS) -> bool:
    """What a receiver does (used by the tests and offered to receivers written in Python)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - ts) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def feishu_sign(secret: str, timestamp_s: str) -> str:
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _check(r, ok_field: str | None = None):
    if r.status >= 500 or r.status in (408, 429):
        raise SendError(f"the endpoint answered {r.status}")
    if r.status >= 400:
        # 4xx: the receiver refused this message; still retried (a receiver being deployed often
        # answers 404 for a while), the backoff and the 24 h limit bound it
        raise SendError(f"the endpoint answered {r.status}: {r.body[:200]!r}")
    if ok_field:
        data = r.json() or {}
        code = data.get(ok_field, 0)
        if code not in (0, "0", None):
            raise SendError(f"the robot answered {ok_field}={code}: {data.get('errmsg') or data.get('msg')}")


class WebhookSender:
    def __init__(self, http):
        self.http = http

    def send(self, kind: str, url: str, secret: str | None, delivery_id: str, event_type: str,
             envelope: dict, subject: str, text: str) -> None:
        try:
            getattr(self, "_" + kind)(url, secret, delivery_id, event_type, envelope, subject, text)
        except BlockedAddress as exc:
            raise SendError(str(exc), permanent=True) from None
        except OSError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    def _webhook(self, url, secret, delivery_id, event_type, envelope, subject, text):
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "crm-notify/1",
                   "X-CRM-Event": event_type, "X-CRM-Delivery": delivery_id, "X-CRM-Timestamp": ts}
        if secret:
            headers["X-CRM-Signature"] = sign(secret, ts, body)
        _check(self.http.post(url, body, headers))

    def _wecom(self, url, secret, delivery_id, event_type, envelope, subject, text):
        # WeCom group robots are authorised by the key in the URL; there is no signature
        body = {"msgtype": "markdown", "markdown": {"content": f"**{subject}**\n{text}"}}
        _check(self.http.post(url, _j(body), {"Content-Type": "application/json"}), "errcode")

    def _dingtalk(self, url, secret, delivery_id, event_type, envelope, subject, text):
        if secret:
            ts = str(int(time.time() * 1000))
            url = f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={quote(dingtalk_sign(secret, ts), safe='')}"
        body = {"msgtype": "markdown", "markdown": {"title": subject, "text": f"### {subject}\n{text}"}}
        _check(self.http.post(url, _j(body), {"Content-Type": "application/json"}), "errcode")

    def _feishu(self, url, secret, delivery_id, event_type, envelope, subject, text):
        body = {"msg_type": "text", "content": {"text": f"{subject}\n{text}"}}
        if secret:
            ts = str(int(time.time()))
            body = {"timestamp": ts, "sign": feishu_sign(secret, ts), **body}
        _check(self.http.post(url, _j(body), {"Content-Type": "application/json"}), "code")


def _j(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()
