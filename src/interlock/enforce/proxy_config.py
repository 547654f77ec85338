"""`interlock proxy --config FILE`: which HTTP calls map to which actions, and how a call becomes params.

A route is a method and a path template (`/payments/{account}`); a call's params are always
`{"path": {...}, "query": {...}, "body": ...}` — kept apart, so that a body field can never stand in for a
path segment the policy or the approver looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interlock.config_files import load_model, read_bytes
from interlock.core.action import ACTION_NAME, CHANNEL_NAME, IDENTIFIER, Principal
from interlock.core.errors import ProxyError, RequestError
from interlock.core.strict_json import MAX_DOCUMENT_BYTES
from interlock.enforce.mcp_gateway import AgentSpec

_SEGMENT = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]{0,63}\})"
PATH_TEMPLATE = rf"^/(?:{_SEGMENT}(?:/{_SEGMENT})*)?$"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_RAW_BODY_BYTES = 64 * 1024 * 1024
BodyMode = Literal["json", "none", "raw"]
# A raw path that an upstream might read as another path than the proxy does: dot segments, empty segments,
# encoded slashes, backslashes or dots, NUL. Refused rather than normalised, so both sides see the same path.
_AMBIGUOUS_PATH = re.compile(r"//|/\.\.?(?:/|$)|%2f|%5c|%2e|%00|\\", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteSpec(_Strict):
    """One route: `action` (and `resource`, a template over the path's names) for a gated route, or
    `pass_through: true` for a route forwarded with no grant (say so explicitly: nothing passes by default)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(pattern=PATH_TEMPLATE, max_length=1024)
    action: str | None = Field(default=None, pattern=ACTION_NAME, max_length=256)
    resource: str | None = Field(default=None, pattern=IDENTIFIER)
    body: BodyMode = "json"  # json: a JSON body is params.body; none: no body allowed; raw: bound by its SHA-256
    pass_through: bool = False

    @model_validator(mode="after")
    def _gated_or_passed(self) -> RouteSpec:
        if self.pass_through == (self.action is not None):
            raise ValueError("a route has an `action`, or is `pass_through: true` — exactly one of the two")
        names = re.findall(r"\{([^}]*)\}", self.path)
        if len(set(names)) != len(names):
            raise ValueError(f"`{self.path}` names a path parameter twice")
        unknown = set(re.findall(r"\{([^}]*)\}", self.resource or "")) - set(names)
        if unknown:
            raise ValueError(f"resource names {sorted(unknown)}, which the path does not have")
        return self


class ProxyConfig(_Strict):
    upstream: str = Field(description="base URL of the API behind the proxy")
    issuer: str = Field(default="interlock-proxy", pattern=IDENTIFIER, description="`iss` of execution tokens")
    audience: str = Field(pattern=IDENTIFIER, description="`aud` of execution tokens: the upstream's name")
    executor: str = Field(default="http-proxy", pattern=IDENTIFIER)
    # With `requester`, a call without a grant is submitted as this principal (202 while it waits for approval);
    # without it, every gated call must bring its grant in `Interlock-Grant`.
    requester: AgentSpec | None = None
    on_behalf_of: tuple[Principal, ...] = ()
    channel: str = Field(default="api", pattern=CHANNEL_NAME)
    justification: str = Field(default="", max_length=4096)
    resource: str | None = Field(default=None, pattern=IDENTIFIER)
    routes: tuple[RouteSpec, ...] = Field(min_length=1)
    max_body_bytes: int = Field(default=MAX_DOCUMENT_BYTES, ge=0, le=MAX_RAW_BODY_BYTES)
    upstream_timeout: float = Field(default=30.0, gt=0, le=3600)
    execution_key: Path = Path("proxy-execution.pem")
    execution_ttl: int = Field(default=60, ge=5, le=3600)

    @field_validator("upstream")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("`upstream` is an http:// or https:// base URL without query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _distinct_routes(self) -> ProxyConfig:
        seen = set()
        for route in self.routes:
            shape = (route.method, re.sub(r"\{[^}]*\}", "{}", route.path))
            if shape in seen:
                raise ValueError(f"two routes for {route.method} {route.path}: which one applies would be a guess")
            seen.add(shape)
        return self

    def default_resource(self) -> str:
        return self.resource or f"http:{urlsplit(self.upstream).netloc}"


def load_config(text: str | bytes, base: Path) -> ProxyConfig:
    """Parse a proxy config (YAML, duplicate keys refused); `execution_key` is relative to `base`."""
    config = load_model(text, ProxyConfig, "proxy config", "a YAML mapping with `upstream`, `audience` and `routes`")
    if config.max_body_bytes > MAX_DOCUMENT_BYTES and any(r.body == "json" for r in config.routes):
        raise RequestError("input.invalid", f"proxy config: a JSON body is at most {MAX_DOCUMENT_BYTES} bytes;"
                                            " use `body: raw` routes for larger uploads")
    return config.model_copy(update={"execution_key": base / config.execution_key})


def read_config(path: Path) -> ProxyConfig:
    return load_config(read_bytes(path), path.parent)


@dataclass(frozen=True)
class Matched:
    route: RouteSpec
    path_params: dict[str, str]


class RouteTable:
    """Finds the route of a call. A path that could be read two ways is refused before any matching."""

    def __init__(self, routes: tuple[RouteSpec, ...]) -> None:
        self._routes = [(route, route.path.strip("/").split("/") if route.path != "/" else []) for route in routes]

    def match(self, method: str, raw_path: str) -> Matched:
        if not raw_path.startswith("/") or _AMBIGUOUS_PATH.search(raw_path) or not raw_path.isascii():
            raise RequestError("input.invalid", "the path has dot segments, empty segments or encoded separators:"
                                                " refused, since the upstream might read it as another path")
        try:
            segments = [unquote(part, errors="strict") for part in raw_path.strip("/").split("/")] \
                if raw_path != "/" else []
        except UnicodeDecodeError:
            raise RequestError("input.invalid", "the path's percent-encoding is not UTF-8") from None
        for route, template in self._routes:
            if route.method != method or len(template) != len(segments):
                continue
            params = _bind(template, segments)
            if params is not None:
                return Matched(route, params)
        raise ProxyError("proxy.unmapped_route", f"no route for {method} {raw_path[:200]}: refused (a route that"
                                                 " needs no grant must say `pass_through: true`)")


def _bind(template: list[str], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for expected, actual in zip(template, segments, strict=True):
        if expected.startswith("{"):
            if not actual or any(ord(c) < 0x20 or ord(c) == 0x7F for c in actual):
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def resource_of(route: RouteSpec, path_params: dict[str, str], default: str) -> str:
    if route.resource is None:
        return default
    return re.sub(r"\{([^}]*)\}", lambda m: path_params[m.group(1)], route.resource)


def params_of(path_params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
    return {"path": path_params, "query": query, "body": body}
