"""Interlock: a second, independent control between a request and its execution."""

from interlock.core.action import ActionRequest, ActionSpec, Principal, action_digest, parse_action, parse_request
from interlock.core.decision import Decision, decide
from interlock.core.errors import (
    ApprovalError,
    AuditError,
    GrantError,
    InterlockError,
    PolicyError,
    RequestError,
    StoreError,
)
from interlock.core.policy import Policy, load_policy

__all__ = [
    "ActionRequest",
    "ActionSpec",
    "ApprovalError",
    "AuditError",
    "Decision",
    "GrantError",
    "InterlockError",
    "Policy",
    "PolicyError",
    "Principal",
    "RequestError",
    "StoreError",
    "action_digest",
    "decide",
    "load_policy",
    "parse_action",
    "parse_request",
]
