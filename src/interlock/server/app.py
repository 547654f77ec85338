"""Building the FastAPI application from a Gate and a credential registry."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.server import errors
from interlock.server.routes import grants, operations, requests
from interlock.server.schemas import BODY_MODELS


def create_app(gate: Gate, credentials: Credentials) -> FastAPI:
    """The HTTP API over `gate`, its callers authenticated by `credentials`."""
    app = FastAPI(title="Interlock", version="1", description="A second, independent control between a request"
                  " and its execution. Every call but jwks and health needs `Authorization: Bearer ilk_...`.")
    app.state.gate = gate
    app.state.credentials = credentials
    app.include_router(requests.router)
    app.include_router(grants.router)
    app.include_router(operations.router)
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
