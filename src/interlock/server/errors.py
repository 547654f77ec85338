"""Every error as the `{"error": {...}}` body, with the status `http_status.status_for` gives its code."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from interlock.core.errors import InterlockError, RequestError
from interlock.http_status import status_for

_log = logging.getLogger(__name__)


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
