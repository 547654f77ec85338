"""`interlock break-glass` and `interlock break-glass-review`: proceed alone in an emergency, and sign it off later."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.gate import Gate
from interlock.results import review_json

WithGate = Callable[[Path | None, Path | None, Callable[[Gate], Any]], Any]
Emit = Callable[[Any], None]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy file \\[env: INTERLOCK_POLICY; default HOME/policy.yaml].")
]


def register(app: typer.Typer, with_gate: WithGate, emit: Emit) -> None:
    """Add the two break-glass commands to `app`, printing and refusing the way every command does."""

    @app.command("break-glass")
    def break_glass(request_id: str,
                    person: Annotated[str, typer.Option("--as", help="Your id, named by a policy break_glass entry.")],
                    channel: Annotated[str, typer.Option("--channel", help="Channel you act over.")],
                    justification: Annotated[str, typer.Option(
                        "--justification", help="Why this cannot wait for the quorum (recorded and sent to every"
                                                " approver group).")],
                    binding_code: Annotated[str | None, typer.Option(
                        "--binding-code", help="The code the requester gave you; needed for a sensitive action."
                    )] = None,
                    home: HomeOpt = None, policy: PolicyOpt = None) -> None:
        """Approve a pending request alone under the policy's break_glass; opens a mandatory post-hoc review."""
        emit(with_gate(home, policy, lambda gate: gate.break_glass(
            request_id, person, channel, justification, binding_code=binding_code).to_json()))

    @app.command("break-glass-review")
    def break_glass_review(request_id: str,
                           reviewer: Annotated[str, typer.Option("--as", help="Reviewer id, e.g. user:bob.")],
                           channel: Annotated[str, typer.Option("--channel", help="Channel you sign off over.")],
                           comment: Annotated[str, typer.Option("--comment")] = "",
                           home: HomeOpt = None, policy: PolicyOpt = None) -> None:
        """Sign off a break-glass use; the second sign-off by another person closes its review."""
        emit(with_gate(home, policy, lambda gate: review_json(gate.review_break_glass(
            request_id, reviewer, channel, comment))))
