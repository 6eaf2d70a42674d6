"""Who is using the console: a login with an API key, then a signed, expiring cookie.

The cookie holds the key's id and a token for cross-site request checks, signed with the
secret key (itsdangerous, which Starlette's own sessions use); the key itself is never
stored in it. Every request looks the key up again, so revoking it ends its sessions. A
key with the ``admin`` scope acts; one with only ``read`` sees everything and acts on
nothing. An action (any POST) must come from the console's own origin and carry the
session's token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from junction.platform.auth import ApiKey, Principal, Scope, find_api_key, key_by_id
from junction.platform.db import database_of
from junction.settings import Settings

COOKIE = "junction_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/console/login"


class LoginRequired(Exception):
    """No valid session: a page answers with the login page, an action with 401."""


class ActionRefused(Exception):
    """An action that this session may not take (read-only key, cross-site, no token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Operator:
    key_id: str
    key_name: str
    admin: bool
    csrf: str


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="junction.console")


async def log_in(request: Request, plain_key: str) -> tuple[ApiKey, str] | None:
    """The key and a new session cookie's value, or None when the key may not log in."""
    async with database_of(request).reading() as session:
        api_key = await find_api_key(session, plain_key.strip())
    if api_key is None or not Principal.of(api_key).has_scope(Scope.read):
        return None
    settings: Settings = request.app.state.settings
    value = _serializer(settings).dumps({"k": api_key.id, "c": secrets.token_urlsafe(24)})
    return api_key, str(value)


def cookie_options(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "max_age": int(settings.console_session_hours * 3600),
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/console",
    }


async def current_operator(request: Request) -> Operator:
    settings: Settings = request.app.state.settings
    value = request.cookies.get(COOKIE)
    if not value:
        raise LoginRequired
    try:
        data = _serializer(settings).loads(
            value, max_age=int(settings.console_session_hours * 3600)
        )
        key_id, csrf = str(data["k"]), str(data["c"])
    except (BadSignature, KeyError, TypeError):
        raise LoginRequired from None
    async with database_of(request).reading() as session:
        api_key = await key_by_id(session, key_id)
    if api_key is None:
        raise LoginRequired
    principal = Principal.of(api_key)
    if not principal.has_scope(Scope.read):
        raise LoginRequired
    return Operator(api_key.id, api_key.name, principal.has_scope(Scope.admin), csrf)


def same_origin(request: Request) -> bool:
    """Whether the request says it comes from this site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def acting_operator(request: Request) -> Operator:
    """The operator of an action: logged in, from this origin, with the session's token, and
    allowed to act."""
    operator = await current_operator(request)
    if not same_origin(request):
        raise ActionRefused("cross-site request refused")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if sent is None or not hmac.compare_digest(sent.encode(), operator.csrf.encode()):
        raise ActionRefused("the request's token is missing or stale; reload the page")
    if not operator.admin:
        raise ActionRefused("this key is read-only: it sees the console and acts on nothing")
    return operator


Viewer = Annotated[Operator, Depends(current_operator)]
Actor = Annotated[Operator, Depends(acting_operator)]
