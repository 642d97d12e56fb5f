"""Outgoing HTTP for webhooks, robots and the SMS provider, with SSRF protection.

Only http and https URLs. The host name is resolved and every address checked: loopback, private,
link-local (cloud metadata 169.254.169.254), multicast, reserved and unspecified addresses are
refused unless NOTIFY_WEBHOOK_ALLOW_PRIVATE=1, or unless they fall in one of the networks
NOTIFY_WEBHOOK_ALLOW_NETWORKS lists (e.g. `127.0.0.1/32` for a receiver on this machine). The check is made in the connection itself, on the
very address the socket then connects to, so a DNS answer that changes between check and connect
(DNS rebinding) cannot slip through. Redirects are not followed."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class BlockedAddress(Exception):
    """The target is not allowed (scheme, or an address in a private range). Permanent."""


def _forbidden(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def check_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedAddress(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise BlockedAddress("the URL has no host")
    if parts.username or parts.password:
        raise BlockedAddress("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BlockedAddress("the URL's port is not valid") from None
    return parts.scheme, parts.hostname, port


def parse_networks(text: str | None) -> tuple:
    """`127.0.0.1/32, 10.8.0.0/16` -> networks (ValueError on a bad entry: a typo must not open up)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in (text or "").split(",") if part.strip())


def resolve(host: str, port: int, allow_private: bool, allowed: tuple = ()) -> list[tuple]:
    """getaddrinfo, then refuse the lot if any address is not public (unless allowed: everything,
    or the address's network is on the allow-list)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    if not allow_private:
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if _forbidden(ip) and not any(ip.version == n.version and ip in n for n in allowed):
                raise BlockedAddress(f"{host} resolves to {ip}, a loopback/private/link-local address "
                                     "(allow it with NOTIFY_WEBHOOK_ALLOW_NETWORKS)")
    return infos


def check_target(url: str, allow_private: bool, allowed: tuple = ()) -> None:
    """Validate a URL when it is registered (the send path checks again at connect time)."""
    _, host, port = check_url(url)
    resolve(host, port, allow_private, allowed)


class _GuardMixin:
    allow_private = False
    allowed: tuple = ()

    def _new_conn(self):
        infos = resolve(self._dns_host, self.port, self.allow_private, self.allowed)
        err = None
        for family, socktype, proto, _, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                for opt in self.socket_options or ():
                    sock.setsockopt(*opt)  # urllib3's defaults: TCP_NODELAY
                t = self.timeout if isinstance(self.timeout, (int, float)) else None
                sock.settimeout(t)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                err = exc
                sock.close()
        raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {self._dns_host}: {err}")


def _classes(allow_private: bool, allowed: tuple = ()):
    guard = {"allow_private": allow_private, "allowed": allowed}
    http_conn = type("GuardedHTTPConnection", (_GuardMixin, HTTPConnection), guard)
    https_conn = type("GuardedHTTPSConnection", (_GuardMixin, HTTPSConnection), guard)
    http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    return {"http": http_pool, "https": https_pool}


@dataclass
class Response:
    status: int
    body: bytes

    def json(self):
        import json
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None


class HttpClient:
    def __init__(self, allow_private: bool, timeout: float = 5.0, allowed: tuple = ()):
        self.allow_private, self.allowed = allow_private, allowed
        self.timeout = timeout
        self.pool = urllib3.PoolManager(num_pools=20, maxsize=4, retries=False)
        self.pool.pool_classes_by_scheme = _classes(allow_private, allowed)

    def post(self, url: str, body: bytes, headers: dict) -> Response:
        check_url(url)
        try:
            r = self.pool.request("POST", url, body=body, headers=headers, redirect=False,
                                  timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                                  preload_content=False)
        except urllib3.exceptions.NewConnectionError as exc:
            cause = exc.__context__ or exc
            if isinstance(cause, BlockedAddress):
                raise cause from None
            raise OSError(str(exc)) from None
        except BlockedAddress:
            raise
        except urllib3.exceptions.HTTPError as exc:
            inner = exc.__context__
            if isinstance(inner, BlockedAddress):
                raise inner from None
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        try:
            data = r.read(64 * 1024)  # the answer matters little; never read an endless one
        finally:
            r.release_conn()
        return Response(r.status, data)

    def close(self):
        self.pool.clear()
