"""The HTTP API: routes translate HTTP to Gate and credential calls, and reason codes to HTTP statuses."""

from interlock.server.app import create_app

__all__ = ["create_app"]
