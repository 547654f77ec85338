"""The approver inbox: server-rendered pages (Jinja2, no JavaScript) behind a cookie session with CSRF tokens."""

from interlock.server.inbox.routes import WEB_CHANNEL, install

__all__ = ["WEB_CHANNEL", "install"]
