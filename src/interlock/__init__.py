"""Interlock: a second, independent control between a request and its execution."""

from interlock.core.action import ActionRequest, ActionSpec, Principal, action_digest, parse_action, parse_request
from interlock.core.decision import Decision, decide
from interlock.core.errors import (
    ApprovalError,
    GrantError,
    InterlockError,
    KeyringError,
    PolicyError,
    RequestError,
    StoreError,
)
from interlock.core.policy import Policy, load_policy
from interlock.enforce.guard import guard
from interlock.enforce.tools import gated_tool
from interlock.gate import Gate
from interlock.home import Home
from interlock.keys import KeyRing
from interlock.results import Consumption, RequestState
from interlock.store.sqlite import SqliteStore

__all__ = [
    "ActionRequest",
    "ActionSpec",
    "ApprovalError",
    "Consumption",
    "Decision",
    "Gate",
    "GrantError",
    "Home",
    "InterlockError",
    "KeyRing",
    "KeyringError",
    "Policy",
    "PolicyError",
    "Principal",
    "RequestError",
    "RequestState",
    "SqliteStore",
    "StoreError",
    "action_digest",
    "decide",
    "gated_tool",
    "guard",
    "load_policy",
    "parse_action",
    "parse_request",
]
