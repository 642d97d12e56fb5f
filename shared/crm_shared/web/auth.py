"""Bearer JWT authentication. HS256 with CRM_JWT_SECRET in development; RS256 from a JWKS URL in
production. Expired, tampered or unsigned (alg: none) tokens get 401; a missing role gets 403."""
from __future__ import annotations

import functools
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
    def __init__(self, settings):
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None

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
        return Principal(id=claims["sub"], name=str(claims.get("name") or claims["sub"]), roles=tuple(roles),
                         team=claims.get("team"), lang=str(claims.get("lang") or "zh-CN"))


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
