"""Bearer JWT authentication. HS256 with CRM_JWT_SECRET in development; RS256 from a JWKS URL in
production. Expired, tampered or unsigned (alg: none) tokens get 401; a missing role gets 403."""
from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

ROLES = ("admin", "sales_rep", "sales_manager", "general_manager", "finance", "ops",
         "service_agent", "service_supervisor", "service")


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    roles: tuple[str, ...]
    team: str | None = None
    lang: str = "zh-CN"

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class TokenVerifier:
    """Checks bearer tokens against one set of settings (secrets, audience, issuer, JWKS).

    HS256 tokens that passed every check are remembered by their exact text (a bounded LRU of this
    verifier, so of these settings: another secret is another verifier with its own cache) with
    their `exp`. A hit is re-checked against the clock every time, as PyJWT checks it (expired
    when exp <= now), so a remembered token is refused from the second it expires; `nbf` and `iat`
    only ever become more true with time. Refused tokens are never remembered, and RS256 tokens
    (JWKS, whose keys can be withdrawn) are checked in full every time."""

    CACHE_SIZE = 1024          # tokens remembered per verifier (least recently used dropped first)
    CACHE_TOKEN_CHARS = 4096   # a longer token is checked every time (bounds the cache's memory)

    def __init__(self, settings, clock=time.time):
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None
        self._clock = clock
        self._verified: OrderedDict[str, tuple[int, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def _decode_hs256(self, token: str, options: dict) -> dict:
        """The current secret first; during a rotation (CRM_JWT_PREVIOUS_SECRET) a token whose
        signature does not match it is tried against the previous one. Only the signature check
        falls back: an expired or otherwise invalid token is refused as it is."""
        s = self.settings
        try:
            return jwt.decode(token, s.jwt_secret, algorithms=["HS256"], audience=s.jwt_audience,
                              issuer=s.jwt_issuer, options=options)
        except jwt.InvalidSignatureError:
            if not s.jwt_previous_secret:
                raise
            return jwt.decode(token, s.jwt_previous_secret, algorithms=["HS256"], audience=s.jwt_audience,
                              issuer=s.jwt_issuer, options=options)

    def verify(self, token: str) -> Principal:
        if self._jwks is None:
            with self._lock:
                hit = self._verified.get(token)
                if hit is not None:
                    self._verified.move_to_end(token)
            if hit is not None:
                exp, principal = hit
                if exp <= self._clock():
                    with self._lock:
                        self._verified.pop(token, None)
                    raise Unauthorized("The token has expired.")
                return principal
        principal, exp = self._verify(token)
        if self._jwks is None and len(token) <= self.CACHE_TOKEN_CHARS:
            with self._lock:
                self._verified[token] = (exp, principal)
                self._verified.move_to_end(token)
                while len(self._verified) > self.CACHE_SIZE:
                    self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        """Every check, no cache: the principal and the token's `exp` (as PyJWT compares it)."""
        s = self.settings
        options = {"require": ["sub", "exp", "roles"]}
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["RS256"], audience=s.jwt_audience, issuer=s.jwt_issuer,
                                    options=options)
            else:
                claims = self._decode_hs256(token, options)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.")
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The token is not valid: {exc}.")
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLES for r in roles):
            raise Unauthorized("The token's roles claim must be a list of known roles.")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("The token's sub claim must be a non-empty string.")
        return (Principal(id=claims["sub"], name=str(claims.get("name") or claims["sub"]), roles=tuple(roles),
                          team=claims.get("team"), lang=str(claims.get("lang") or "zh-CN")), int(claims["exp"]))


def dev_token(secret: str, user: str, name: str, roles: list[str], team: str | None = None, lang: str = "zh-CN",
              ttl: timedelta = timedelta(hours=12), now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role(s): {', '.join(bad)}")
    claims = {"sub": user, "name": name, "roles": roles, "team": team, "lang": lang,
              "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


def authenticate() -> None:
    """before_request: every endpoint needs a bearer token unless marked public."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or _is_public(view) or request.endpoint in current_app.config["CRM_PUBLIC_ENDPOINTS"]:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required (Authorization: Bearer <JWT>).")
    g.user = current_app.extensions["crm"]["verifier"].verify(token.strip())


def _is_public(view) -> bool:
    if getattr(view, "_public", False):
        return True
    cls = getattr(view, "view_class", None)  # a MethodView: @public may sit on the method itself
    method = getattr(cls, request.method.lower(), None) if cls is not None else None
    return bool(getattr(method, "_public", False) or getattr(cls, "_public", False))


def public(fn):
    """Mark a view as needing no user token (health, metrics, docs, public intake, CSAT links).
    Works on a function view, a MethodView class, or one method of a MethodView."""
    fn._public = True
    return fn


def current_user() -> Principal:
    return g.user


def require_roles(*roles: str):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            user: Principal = g.user
            if not (user.is_admin or user.has(*roles)):
                raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
            return fn(*a, **kw)
        return wrapper
    return deco
