"""The one place that maps reason codes to HTTP statuses, and every error to the `{"error": {...}}` body.

| reason code                                                                | status |
| -------------------------------------------------------------------------- | ------ |
| `input.*`, `policy.invalid`                                                | 400    |
| `input.too_large`                                                          | 413    |
| `input.no_such_endpoint`                                                   | 404    |
| `input.method_not_allowed`                                                 | 405    |
| `auth.missing`, `auth.invalid`, `auth.revoked`, `auth.session`             | 401    |
| `auth.forbidden`, `auth.principal_mismatch`, `auth.csrf`                   | 403    |
| `request.not_found`, `auth.unknown_credential`                             | 404    |
| `approval.*`, `request.rejected`, `request.not_pending`                    | 409    |
| `approval.binding_mismatch` (a sensitive approve without its code)         | 409    |
| `approval.break_glass_not_allowed` (no policy entry lets the caller)       | 403    |
| `approval.expired`, `grant.expired`                                        | 410    |
| `grant.already_used`, `grant.not_consumed`, `grant.result_recorded`        | 409    |
| any other `grant.*` (the grant presented does not authorize this action)   | 403    |
| any other `policy.*` (e.g. `policy.no_executor` when issuing a grant)      | 409    |
| `store.unavailable`, `keys.*`                                              | 503    |
| `internal` (a bug: logged; tests assert it never happens)                  | 500    |
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from interlock.core.errors import InterlockError, RequestError

_log = logging.getLogger(__name__)

_EXACT = {
    "input.too_large": 413,
    "input.no_such_endpoint": 404,
    "input.method_not_allowed": 405,
    "policy.invalid": 400,
    "auth.missing": 401,
    "auth.invalid": 401,
    "auth.revoked": 401,
    "auth.forbidden": 403,
    "auth.principal_mismatch": 403,
    "auth.session": 401,
    "auth.csrf": 403,
    "auth.unknown_credential": 404,
    "auth.already_revoked": 409,
    "request.not_found": 404,
    "request.rejected": 409,
    "request.not_pending": 409,
    "approval.binding_mismatch": 409,
    "approval.break_glass_not_allowed": 403,
    "approval.expired": 410,
    "grant.expired": 410,
    "grant.already_used": 409,
    "grant.not_consumed": 409,
    "grant.result_recorded": 409,
    "audit.no_checkpoint": 404,
    "audit.out_of_range": 404,
    "audit.inconsistent": 409,
}
_BY_FAMILY = {"input": 400, "approval": 409, "grant": 403, "policy": 409, "store": 503, "keys": 503, "audit": 400}


def status_for(code: str) -> int:
    """The HTTP status of a reason code; an unknown family is a client error, never a 500."""
    return _EXACT.get(code) or _BY_FAMILY.get(code.split(".", 1)[0], 400)


def error_response(error: InterlockError) -> JSONResponse:
    status = status_for(error.code)
    # RFC 6750 §3: a 401 names the scheme the caller must use.
    headers = {"WWW-Authenticate": 'Bearer realm="interlock"'} if status == 401 else None
    return JSONResponse(error.to_json(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Route every error, expected or not, through `error_response`."""

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, InterlockError)
        return error_response(error)

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "$"
        return error_response(RequestError("input.invalid", f"`{where}`: {first.get('msg', 'invalid')}"))

    async def http(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        if error.status_code == 404:
            return error_response(RequestError("input.no_such_endpoint", "no such endpoint"))
        if error.status_code == 405:
            return error_response(RequestError("input.method_not_allowed", "method not allowed on this endpoint"))
        return error_response(RequestError("input.invalid", str(error.detail)))

    async def internal(_: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error: %s", error)
        return JSONResponse({"error": {"code": "internal", "message": "internal error"}}, status_code=500)

    app.add_exception_handler(InterlockError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, internal)
