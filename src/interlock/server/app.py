"""Building the FastAPI application from a Gate and a credential registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.server import errors, metrics
from interlock.server.inbox import install as install_inbox
from interlock.server.routes import grants, operations, requests
from interlock.server.schemas import BODY_MODELS

if TYPE_CHECKING:
    from interlock.oidc import OidcBearer

# The gate's work holds the GIL but for its fsyncs: a dozen threads keep group commit fed, and more only
# contend for the GIL (measured: 40, anyio's default, served about 15% fewer decisions per second than 8-16).
DEFAULT_WORKER_THREADS = 12


def create_app(gate: Gate, credentials: Credentials, *, metrics_public: bool = False,
               dev_insecure_cookies: bool = False, oidc: OidcBearer | None = None,
               worker_threads: int = DEFAULT_WORKER_THREADS) -> FastAPI:
    """The HTTP API over `gate`, its callers authenticated by `credentials`.

    `/metrics` needs an admin credential unless `metrics_public` (only for a server bound to loopback).
    One app per gate: the app becomes the gate's observer. The inbox's cookies are `Secure` unless
    `dev_insecure_cookies` (only for plain HTTP on loopback). With `oidc`, principals may also present bearer
    JWTs of that OpenID provider. Store and gate calls run on at most `worker_threads` threads at once.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        yield

    app = FastAPI(title="Interlock", version="1", description="A second, independent control between a request"
                  " and its execution. Every call but jwks and health needs `Authorization: Bearer ilk_...`.",
                  lifespan=lifespan)
    app.state.gate = gate
    app.state.credentials = credentials
    app.state.oidc = oidc
    app.state.metrics = metrics.Metrics(public=metrics_public)
    gate.observer = app.state.metrics.observe
    app.include_router(requests.router)
    app.include_router(grants.router)
    app.include_router(operations.router)
    install_inbox(app, dev_insecure_cookies=dev_insecure_cookies)
    app.include_router(metrics.router)
    errors.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            # Bodies are read by the strict JSON parser, not FastAPI's, so their schemas are added here.
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in BODY_MODELS:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
