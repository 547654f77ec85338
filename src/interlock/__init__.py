"""Interlock: a second, independent control between a request and its execution."""

from typing import TYPE_CHECKING, Any

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
from interlock.gate import Gate
from interlock.home import Home
from interlock.keys import KeyRing
from interlock.results import Consumption, RequestState
from interlock.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from interlock.enforce.guard import guard
    from interlock.enforce.tools import gated_tool

# The enforcement helpers (and asyncio, anyio under them) load on first use, so a process that only serves or runs
# a CLI command does not pay for them at start; `kill -9` restarts in tests/e2e/test_crash.py count that cost.
_LAZY = {"guard": "interlock.enforce.guard", "gated_tool": "interlock.enforce.tools"}


def __getattr__(name: str) -> Any:  # PEP 562
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interlock' has no attribute {name!r}")

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
