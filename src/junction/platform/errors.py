"""The one error shape, ``{"errors": ["message", ...]}``, for every failure.

Domain code raises a ``JunctionError`` subclass, which carries its own status code; the
handlers here turn it, FastAPI's validation errors and Starlette's HTTP errors into that
shape. Unexpected exceptions become a bare 500 that names only the request id, and are
logged by ``junction.platform.middleware``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


class JunctionError(Exception):
    status_code = 400

    def __init__(self, *messages: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages) or [self.default_message]
        self.headers = dict(headers or {})

    default_message = "Bad request"


class ValidationFailed(JunctionError):
    status_code = 422
    default_message = "Validation failed"


class NotFound(JunctionError):
    status_code = 404
    default_message = "Not found"


class Unauthorized(JunctionError):
    status_code = 401
    default_message = "Authentication required"

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(JunctionError):
    status_code = 403
    default_message = "Forbidden"


class Conflict(JunctionError):
    status_code = 409
    default_message = "Conflict"


class PayloadTooLarge(JunctionError):
    status_code = 413
    default_message = "Request body is too large"


class UnsupportedMediaType(JunctionError):
    status_code = 415
    default_message = "Unsupported media type"


class TooManyRequests(JunctionError):
    status_code = 429
    default_message = "Too many requests"


class ServiceUnavailable(JunctionError):
    status_code = 503
    default_message = "Service unavailable"


def error_body(messages: Sequence[str]) -> dict[str, list[str]]:
    return {"errors": list(messages)}


def error_response(
    status_code: int, messages: Sequence[str], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(messages), status_code=status_code, headers=headers)


def describe_validation_error(error: Mapping[str, Any]) -> str:
    """One readable sentence per problem, naming the field: ``per_page: must be ...``."""
    location = [str(part) for part in error.get("loc", ())]
    if location and location[0] in _SOURCES:
        source, location = location[0], location[1:]
    else:
        source = ""
    field = ".".join(location) or source or "request"
    message = str(error.get("msg", "is invalid"))
    if error.get("type") == "missing":
        message = "is required"
    elif error.get("type") == "json_invalid":
        field, message = "body", "is not valid JSON"
    return f"{field}: {message}"


def junction_error_response(exc: JunctionError) -> JSONResponse:
    return error_response(exc.status_code, exc.messages, exc.headers)


def internal_error_message(request_id: str) -> str:
    """A 500's only message: the request id finds the error in the log, and nothing leaks."""
    return f"Internal server error (request id {request_id})"


async def _junction_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JunctionError)
    return junction_error_response(exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's error middleware answers with this, then re-raises for the request
    # context middleware, outside it, to log the error with its traceback.
    return error_response(500, [internal_error_message(request.state.request_id)])


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = list(dict.fromkeys(describe_validation_error(e) for e in exc.errors()))
    return error_response(422, messages)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, [detail], headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110), not only the first route's:
    Starlette's 405 names the methods of the first route whose path matched."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(route.methods)
    return sorted(
        methods, key=lambda method: (_METHOD_ORDER.get(method, len(_METHOD_ORDER)), method)
    )


_METHOD_ORDER = {
    method: rank
    for rank, method in enumerate(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(JunctionError, _junction_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
