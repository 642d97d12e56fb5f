"""A minimal OpenID Connect provider for the consoles' production login path: discovery, an
authorization endpoint that signs the user in at once and redirects back with a code, and a token
endpoint that checks the PKCE verifier against the challenge (RFC 7636, S256) before it issues an
access token. The token is the HS256 kind the services accept in development; a real provider
signs RS256 and the services read its JWKS (CRM_JWKS_URL)."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from urllib.parse import urlencode

from werkzeug.serving import make_server
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from crm_shared.config import DEV_JWT_SECRET
from crm_shared.web.auth import dev_token


class FakeIdP:
    def __init__(self, user: dict, client_id: str = "crm-consoles"):
        self.user, self.client_id = user, client_id
        self.codes: dict[str, dict] = {}
        self.log: list[tuple[str, dict]] = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _json(body, status=200):
        return Response(json.dumps(body), status=status, mimetype="application/json",
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})

    def __call__(self, environ, start_response):
        req = Request(environ)
        if req.path == "/.well-known/openid-configuration":
            resp = self._json({"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                               "token_endpoint": f"{self.url}/token", "response_types_supported": ["code"],
                               "code_challenge_methods_supported": ["S256"]})
        elif req.path == "/authorize":
            q = req.args
            self.log.append(("authorize", dict(q)))
            if (q.get("response_type") != "code" or q.get("client_id") != self.client_id
                    or q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("state")):
                resp = Response("bad authorization request", status=400)
            else:
                code = secrets.token_urlsafe(16)
                self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
                resp = redirect(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")
        elif req.path == "/token" and req.method == "POST":
            f = req.form
            self.log.append(("token", dict(f)))
            grant = self.codes.pop(f.get("code", ""), None)
            verifier = f.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if (grant is None or f.get("grant_type") != "authorization_code" or f.get("client_id") != self.client_id
                    or f.get("redirect_uri") != grant["redirect_uri"] or challenge != grant["challenge"]):
                resp = self._json({"error": "invalid_grant"}, 400)
            else:
                u = self.user
                resp = self._json({"access_token": dev_token(DEV_JWT_SECRET, u["id"], u["name"], u["roles"], u.get("team"),
                                                             u.get("lang", "zh-CN")),
                                   "token_type": "Bearer", "expires_in": 3600})
        else:
            resp = Response("not found", status=404)
        return resp(environ, start_response)
