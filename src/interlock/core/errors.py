"""The one error tree of Interlock: every refusal carries a stable, documented reason code."""

from __future__ import annotations

from typing import Any


class InterlockError(Exception):
    """Base of every error Interlock raises on purpose; `code` is the stable reason code."""

    code: str = "interlock.error"

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        """The `{"error": {...}}` body used by the CLI and the API."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return {"error": body}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class RequestError(InterlockError):
    """Input that is not a valid action request, JSON document or argument (`input.*`)."""


class PolicyError(InterlockError):
    """A policy that cannot be loaded or a condition that cannot be evaluated (`policy.*`)."""


class ApprovalError(InterlockError):
    """An approval or rejection that is refused (`approval.*`, `request.*`)."""


class GrantError(InterlockError):
    """A grant that cannot be consumed (`grant.*`)."""


class StoreError(InterlockError):
    """The store cannot be reached or failed (`store.*`); always refuses."""


class AuthError(InterlockError):
    """A caller that is not authenticated or not allowed, or a credential that cannot be managed (`auth.*`)."""


class KeyringError(InterlockError):
    """A signing key that cannot be loaded (`keys.*`)."""


class AuditError(InterlockError):
    """An audit log, proof, signed note or checkpoint that is malformed or does not verify (`audit.*`).

    Codes: `audit.bad_note` (not a signed note), `audit.bad_checkpoint` (not a checkpoint body),
    `audit.bad_key` (not a verifier key), `audit.bad_signature` (no trusted signature verifies, or one fails),
    `audit.inconsistent` (two tree heads that no consistency proof joins), `audit.out_of_range` (a leaf,
    node or tree size the log does not have).
    """


class ProxyError(InterlockError):
    """The HTTP enforcing proxy refused a call or could not complete it upstream (`proxy.*`)."""


class ExecutionError(InterlockError):
    """An `Interlock-Execution` token that is missing, malformed, stale, replayed or bound to another call
    (`execution.*`): the upstream refuses the call as one that skipped the gate."""
