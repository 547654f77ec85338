"""The one table of reason codes to HTTP statuses, for every HTTP surface: the API server and the proxy.

| reason code                                                                | status |
| -------------------------------------------------------------------------- | ------ |
| `input.*`, `policy.invalid`                                                | 400    |
| `input.too_large`                                                          | 413    |
| `input.no_such_endpoint`                                                   | 404    |
| `input.method_not_allowed`                                                 | 405    |
| `auth.missing`, `auth.invalid`, `auth.revoked`, `auth.session`             | 401    |
| `auth.forbidden`, `auth.principal_mismatch`, `auth.csrf`                   | 403    |
| `auth.jwks_unavailable` (the OpenID provider's keys cannot be read now)    | 503    |
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
| `proxy.unmapped_route` (the proxy has no route for this call)              | 403    |
| `proxy.upstream_failed`, `proxy.upstream_unavailable`                      | 502    |
| `proxy.upstream_timeout`                                                   | 504    |
| `execution.*` (an upstream refuses a call without a valid execution token) | 403    |
"""

from __future__ import annotations

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
    "auth.jwks_unavailable": 503,
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
    "proxy.unmapped_route": 403,
    "proxy.upstream_failed": 502,
    "proxy.upstream_unavailable": 502,
    "proxy.upstream_timeout": 504,
}
_BY_FAMILY = {"input": 400, "approval": 409, "grant": 403, "policy": 409, "store": 503, "keys": 503, "audit": 400,
               "proxy": 502, "execution": 403}


def status_for(code: str) -> int:
    """The HTTP status of a reason code; an unknown family is a client error, never a 500."""
    return _EXACT.get(code) or _BY_FAMILY.get(code.split(".", 1)[0], 400)
