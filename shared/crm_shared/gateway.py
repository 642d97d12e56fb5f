"""The development gateway: what deploy/gateway/nginx.conf does in compose, for `crm run`.

One port in front of the four services and the department consoles:

    /leads/ /sales/ /service-desk/ /notify/   -> the service, prefix stripped (streamed, so the
                                                 inbox's server-sent events arrive as written)
    /app/...                                  -> the static consoles in frontends/
    /app/config.json                          -> how the consoles log in (development picker or OIDC)
    POST /auth/dev-token                      -> a development token for the user picker
                                                 (refused with CRM_ENV=production)

The consoles come with security headers: a Content-Security-Policy (scripts, styles, fetches from
this origin only, plus the identity provider's origin for the OIDC calls; the one inline script,
the import map, allowed by its SHA-256 hash, computed from the page served), nosniff, and a
Referrer-Policy that never sends a console's address (a ticket or lead id in it) elsewhere.

It is a threaded werkzeug server with a `requests` session per thread: plenty for one developer,
not a production proxy (compose and the cluster use nginx)."""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import logging
import os
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.security import safe_join
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.utils import redirect, send_file
from werkzeug.wrappers import Request, Response

from .config import Settings

log = logging.getLogger("crm.gateway")

PREFIXES = ("leads", "sales", "service-desk", "notify")
DEFAULT_PORTS = {"leads": 8001, "sales": 8002, "service-desk": 8003, "notify": 8004}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
# requests decodes gzip/deflate while streaming, so these no longer describe the body we pass on
DROP_FROM_RESPONSE = HOP_BY_HOP | {"content-encoding"}
CONSOLES = ("sales", "backoffice", "service", "managers")
# an inline <script> of a console page (the import map): allowed by the hash of its text
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
REFERRER_POLICY = "same-origin"


def script_hashes(page: bytes) -> list[str]:
    """CSP source expressions ('sha256-...') for the inline scripts of an HTML page."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
            for m in INLINE_SCRIPT.finditer(page)]


def content_security_policy(page: bytes | None = None, oidc: dict | None = None) -> str:
    """The consoles' policy: everything from this origin, no plugins, no framing, no inline code
    but the page's own inline scripts (by hash); fetches may also go to the identity provider."""
    connect = ["'self'"]
    if oidc:
        parts = urlsplit(oidc["issuer"])
        connect.append(f"{parts.scheme}://{parts.netloc}")
    scripts = ["'self'", *script_hashes(page or b"")]
    return "; ".join([
        "default-src 'self'", f"script-src {' '.join(scripts)}", "style-src 'self'", "img-src 'self' data:",
        "font-src 'self'", f"connect-src {' '.join(connect)}", "object-src 'none'", "base-uri 'none'",
        "form-action 'self'", "frame-ancestors 'none'"])


def default_frontends_dir() -> Path:
    """frontends/ of the checkout this package is installed (editable) from."""
    return Path(__file__).resolve().parents[2] / "frontends"


def problem(status: int, title: str, detail: str, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")


def oidc_config(env) -> dict | None:
    """The identity provider the consoles log in with, when CRM_OIDC_ISSUER is set."""
    issuer = env.get("CRM_OIDC_ISSUER")
    if not issuer:
        return None
    return {"issuer": issuer.rstrip("/"), "client_id": env.get("CRM_OIDC_CLIENT_ID", "crm-consoles"),
            "scope": env.get("CRM_OIDC_SCOPE", "openid profile"),
            "audience": env.get("CRM_JWT_AUDIENCE") or None}


class Gateway:
    def __init__(self, upstreams: dict[str, str], frontends: Path, env=None):
        self.upstreams = {k: v.rstrip("/") for k, v in upstreams.items()}
        self.frontends = Path(frontends).resolve()
        self.env = dict(os.environ if env is None else env)
        self.settings = Settings.from_env("gateway", self.env)
        self._local = threading.local()

    # -- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            response = problem(exc.code or 500, exc.name, exc.description or "")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/healthz":
            return Response(json.dumps({"status": "ok", "service": "gateway"}), mimetype="application/json")
        if path in ("/", "/app"):
            return redirect("/app/")
        if path == "/auth/dev-token":
            return self.dev_token(request)
        if path == "/app/config.json":
            return self.config()
        if path.startswith("/app/"):
            return self.static(request, path[len("/app/"):])
        head, _, rest = path.lstrip("/").partition("/")
        if head in self.upstreams and path.startswith(f"/{head}/"):
            return self.proxy(request, head, "/" + rest)
        return problem(404, "Not Found", "No service is published at this path. Known prefixes: "
                       + ", ".join(f"/{p}/" for p in PREFIXES) + ", /app/.")

    # -- consoles ------------------------------------------------------------------------------
    def config(self) -> Response:
        oidc = oidc_config(self.env)
        if oidc:
            body = {"auth": "oidc", "oidc": oidc, "env": self.settings.env}
        elif self.settings.env == "production":
            return problem(503, "Service Unavailable", "CRM_ENV=production needs CRM_OIDC_ISSUER for the consoles.")
        else:
            body = {"auth": "dev", "env": self.settings.env}
        return self.secure(Response(json.dumps(body), mimetype="application/json",
                                    headers={"Cache-Control": "no-store"}))

    def static(self, request: Request, rel: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return problem(405, "Method Not Allowed", "The consoles are static files.")
        target = safe_join(str(self.frontends), rel) if rel else str(self.frontends)
        if target is None:
            raise NotFound()
        p = Path(target)
        if p.is_dir():
            if not request.path.endswith("/"):
                return redirect(request.path + "/")
            p = p / "index.html"
        if not p.is_file():
            return problem(404, "Not Found", f"No file {request.path}.")
        resp = send_file(str(p), request.environ, conditional=True, max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        self.secure(resp, p.read_bytes() if p.suffix == ".html" else None)
        return resp

    def secure(self, resp: Response, page: bytes | None = None) -> Response:
        """The security headers of everything under /app/ (the policy matters for the pages)."""
        resp.headers["Content-Security-Policy"] = content_security_policy(page, oidc_config(self.env))
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = REFERRER_POLICY
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    def dev_token(self, request: Request) -> Response:
        from .web.auth import ROLES, dev_token
        if request.method != "POST":
            return problem(405, "Method Not Allowed", "POST a user to get a development token.")
        if self.settings.env == "production":
            return problem(403, "Forbidden", "Development tokens are not issued with CRM_ENV=production.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return problem(400, "Bad Request", "The body must be a JSON object.")
        errors = {}
        fields = {"user": str, "name": str, "roles": list, "team": (str, type(None)), "lang": str}
        for key in body:
            if key not in fields:
                errors[key] = ["Unknown field."]
        for key in ("user", "name", "roles"):
            if key not in body:
                errors[key] = ["Missing data for required field."]
        for key, kind in fields.items():
            if key in body and not isinstance(body[key], kind):
                errors[key] = ["Wrong type."]
        if isinstance(body.get("roles"), list):
            bad = [r for r in body["roles"] if r not in ROLES]
            if bad or not body["roles"]:
                errors["roles"] = [f"Must be one or more of: {', '.join(ROLES)}."]
        if body.get("lang") not in (None, "zh-CN", "en"):
            errors["lang"] = ["Must be zh-CN or en."]
        for key in ("user", "name"):
            if isinstance(body.get(key), str) and not (0 < len(body[key].strip()) <= 100):
                errors[key] = ["Length must be between 1 and 100."]
        if errors:
            return problem(422, "Unprocessable Entity", "The user is not valid.", errors={"json": errors})
        token = dev_token(self.settings.jwt_secret, body["user"], body["name"], body["roles"], body.get("team"),
                          body.get("lang") or "zh-CN", timedelta(hours=12))
        self._register_in_directory(body)
        return Response(json.dumps({"token": token}), mimetype="application/json",
                        headers={"Cache-Control": "no-store"})

    def _register_in_directory(self, user: dict) -> None:
        """A user picked in development becomes a colleague the consoles can name: registered in
        notify's staff directory when it doesn't know them yet (contact data someone entered is
        never replaced). Best effort: the token is issued even when notify is down. In production
        the identity provider's sync fills the directory (PUT /v1/recipients/{id})."""
        base = self.upstreams.get("notify")
        if not base:
            return
        from .web.auth import dev_token
        service = dev_token(self.settings.jwt_secret, "gateway", "gateway", ["service"], None, "en", timedelta(minutes=5))
        url = f"{base}/v1/recipients/{quote(user['user'], safe='')}"
        headers = {"Authorization": f"Bearer {service}"}
        try:
            known = self._session().get(url, headers=headers, timeout=2)
            if known.status_code != 404:
                return
            r = self._session().put(url, headers=headers, timeout=2, json={
                "name": user["name"], "roles": user["roles"], "team_id": user.get("team"),
                "language": user.get("lang") or "zh-CN"})
            if r.status_code >= 400:
                log.warning("notify refused the development user %s: %s", user["user"], r.status_code)
        except requests.RequestException as exc:
            log.warning("notify unreachable, development user %s not in the directory: %s", user["user"], exc)

    # -- reverse proxy -------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.trust_env = False  # never send loopback traffic through an HTTP(S)_PROXY
        return s

    def proxy(self, request: Request, prefix: str, path: str) -> Response:
        url = self.upstreams[prefix] + path
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        rid = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        forwarded_for = ", ".join(filter(None, [request.headers.get("X-Forwarded-For"), request.remote_addr]))
        headers.update({"X-Request-ID": rid, "X-Forwarded-For": forwarded_for,
                        "X-Forwarded-Proto": request.scheme, "X-Forwarded-Host": request.host,
                        "X-Forwarded-Prefix": f"/{prefix}", "X-Real-IP": request.remote_addr or ""})
        try:
            upstream = self._session().request(request.method, url, headers=headers, data=request.get_data(),
                                               stream=True, allow_redirects=False, timeout=(5, 3600))
        except requests.RequestException as exc:
            log.warning("upstream %s unreachable: %s", prefix, exc)
            return problem(502, "Bad Gateway", f"The {prefix} service is not reachable.")
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in DROP_FROM_RESPONSE]

        def body():
            try:
                # chunk_size=None: pass each piece on as it arrives (server-sent events)
                yield from upstream.iter_content(chunk_size=None)
            except requests.RequestException:
                return
            finally:
                upstream.close()

        return Response(body(), status=upstream.status_code, headers=out_headers, direct_passthrough=True)


def upstreams_from(ports: dict[str, int], host: str = "127.0.0.1") -> dict[str, str]:
    return {name: f"http://{host}:{port}" for name, port in ports.items()}


class _QuietHandler(WSGIRequestHandler):
    """Access lines only with LOG_LEVEL=DEBUG (the services log their own requests)."""

    def log_request(self, code="-", size="-"):
        if log.isEnabledFor(logging.DEBUG):
            super().log_request(code, size)


def serve(gateway: Gateway, host: str, port: int):
    """A threaded server (one thread per connection: a long inbox stream holds only its own)."""
    server = make_server(host, port, gateway, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True
    return server


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="crm-gateway", description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("BIND_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8080")))
    p.add_argument("--upstream", action="append", default=[], metavar="PREFIX=URL",
                   help="e.g. leads=http://127.0.0.1:8001 (default: the services' own ports on 127.0.0.1)")
    p.add_argument("--frontends", default=os.environ.get("CRM_FRONTENDS_DIR") or str(default_frontends_dir()))
    a = p.parse_args(argv)
    ups = upstreams_from(DEFAULT_PORTS)
    for item in a.upstream:
        name, _, url = item.partition("=")
        if name not in PREFIXES or not url:
            p.error(f"--upstream {item!r}: expected one of {', '.join(PREFIXES)}=URL")
        ups[name] = url
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = serve(Gateway(ups, Path(a.frontends)), a.host, a.port)
    print(f"      gateway: http://{a.host}:{server.server_port}/app/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
