"""The request middleware: request ids, the access log, HTTP metrics and body guards.

Written as one pure ASGI middleware rather than assembled from libraries
(asgi-correlation-id, starlette-exporter, a body-limit package): each of those wraps
``send`` and ``receive`` again on the hot path, and the access log, the metrics and the
request id all need the same three facts (route template, status, duration).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junction.platform.errors import error_body, internal_error_message
from junction.platform.logging import write_access_line
from junction.platform.metrics import observe_request

log = structlog.get_logger("junction.access")
_access_log = logging.getLogger("junction.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RAW_NAME = REQUEST_ID_HEADER.lower().encode()
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ACCEPTED_MEDIA_TYPES = ("application/json", "multipart/form-data")
_MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        upload_paths: re.Pattern[str] | None = None,
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.upload_paths = upload_paths
        # Room for the multipart framing and form fields around the file itself.
        self.max_upload_body_bytes = max_upload_bytes + _MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _accepted_request_id(headers.get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        started_response = refused = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started_response
            if refused:  # we already answered 413 while the app was reading the body
                return
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                # Added, not set: no answer names its own request id, so there is nothing
                # to replace, and a new list leaves the response's own headers as they were.
                request_id_header = (_REQUEST_ID_RAW_NAME, request_id.encode())
                message["headers"] = [
                    *message.get("headers", ()),
                    request_id_header,
                    *_security_headers(message.get("headers", ()), scope),
                ]
            await send(message)

        async def refuse_oversized_body(message: str) -> None:
            nonlocal refused
            await _send_error(send_with_request_id, 413, message)
            refused = True

        try:
            limit, rejection = self._check_body(scope, headers)
            rejection = _oversized_headers(scope) or _nul_in_url(scope) or rejection
            if rejection is not None:
                await _send_error(send_with_request_id, *rejection)
            else:
                receive = _limited(receive, limit, refuse_oversized_body)
                await self.app(scope, receive, send_with_request_id)
        except Exception:
            # Logged here, outside every other layer, with the request id bound. FastAPI's
            # error middleware has answered already for its routes (``platform.errors``).
            log.exception("unhandled error")
            if not started_response:
                await _send_error(send_with_request_id, 500, internal_error_message(request_id))
        finally:
            duration = time.perf_counter() - started
            route = route_template(scope)
            observe_request(scope["method"], route, status, duration)
            # Asked first: structlog builds the whole event before its level filter drops it.
            if _access_log.isEnabledFor(logging.INFO):
                write_access_line(
                    request_id,
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()

    def _check_body(self, scope: Scope, headers: Headers) -> tuple[int, tuple[int, str] | None]:
        """The body's byte limit, and the refusal (status, message) if it breaks a rule now."""
        if scope["method"] not in _BODY_METHODS:
            return self.max_body_bytes, None
        media_type = _media_type(headers)
        upload = self._is_upload(scope, media_type)
        limit = self.max_upload_body_bytes if upload else self.max_body_bytes
        length = headers.get("content-length")
        if "transfer-encoding" not in headers and length in (None, "0"):
            return limit, None
        if length is not None and (not length.isdigit() or int(length) > limit):
            return limit, (413, f"Request body is larger than the limit of {limit} bytes")
        if not upload and not _accepted_media_type(media_type):
            shown = media_type or "none"
            accepted = " or ".join(ACCEPTED_MEDIA_TYPES)
            return limit, (415, f"Content-Type {shown} is not supported; send {accepted}")
        return limit, None

    def _is_upload(self, scope: Scope, media_type: str) -> bool:
        """A file sent to an upload route: any type passes here, the route checks it."""
        return (
            self.upload_paths is not None
            and media_type != "application/json"
            and self.upload_paths.match(scope["path"]) is not None
        )


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"same-origin"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _security_headers(
    present: list[tuple[bytes, bytes]], scope: Scope
) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries, unless the response set its own; HSTS only over
    TLS (a browser ignores it over plain HTTP, and it would pin a host still on HTTP). The
    referrer policy is ``same-origin``, not ``no-referrer``: under ``no-referrer`` browsers
    send ``Origin: null`` with a form's POST, and the console's cross-site check needs it."""
    names = {name.lower() for name, _ in present}
    wanted = [*_SECURITY_HEADERS, _HSTS] if scope.get("scheme") == "https" else _SECURITY_HEADERS
    return [header for header in wanted if header[0] not in names]


def _nul_in_url(scope: Scope) -> tuple[int, str] | None:
    """400 for a NUL character in the path or the query: no id or filter holds one, and
    PostgreSQL refuses it in text, which would turn a bad request into an error."""
    query: bytes = scope.get("query_string", b"")
    if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
        return 400, "NUL characters are not accepted in the URL"
    return None


def _oversized_headers(scope: Scope) -> tuple[int, str] | None:
    """431 for more header lines or bytes than any client of Junction sends: the HTTP server
    takes headers of any size, and each one costs memory and CPU on every layer."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    if len(raw) > MAX_HEADERS:
        return 431, f"More than {MAX_HEADERS} request headers"
    if sum(len(name) + len(value) for name, value in raw) > MAX_HEADER_BYTES:
        return 431, f"The request headers are larger than {MAX_HEADER_BYTES} bytes"
    return None


def _accepted_media_type(media_type: str) -> bool:
    return media_type in ACCEPTED_MEDIA_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _accepted_request_id(candidate: str | None) -> str:
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    # 32 hex digits, as uuid4().hex. Not a secret, so not from the OS's random source,
    # a system call per request.
    return f"{random.getrandbits(128):032x}"


def _limited(receive: Receive, limit: int, refuse: Callable[[str], Awaitable[None]]) -> Receive:
    """Count streamed body bytes too: Content-Length may be absent or a lie.

    Past the limit the client gets 413 and the app sees the client disconnect, so no
    framework code in between can turn the refusal into a different error.
    """
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                await refuse(f"Request body is larger than the limit of {limit} bytes")
                return {"type": "http.disconnect"}
        return message

    return receive_within_limit


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body([message])).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
