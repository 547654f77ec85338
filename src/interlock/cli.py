"""The `interlock` command: parse arguments, call the gate, print JSON. No business rule lives here."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from interlock.cli_audit import register as register_audit_commands
from interlock.cli_break_glass import register as register_break_glass_commands
from interlock.cli_credentials import register as register_credential_commands
from interlock.cli_mcp import register as register_mcp_commands
from interlock.cli_proxy import register as register_proxy_commands
from interlock.cli_scan import register as register_scan_commands
from interlock.cli_store import register as register_store_commands
from interlock.cli_witness import register as register_witness_commands
from interlock.core.action import parse_action, parse_request
from interlock.core.decision import decide
from interlock.core.errors import InterlockError, RequestError
from interlock.core.policy import load_policy
from interlock.gate import Gate, utc_now
from interlock.home import EXAMPLES, Home
from interlock.keys import KeyRing
from interlock.results import OUTCOME_STATUS

# Exit codes: one place. 0 done, 1 audit does not verify, 2 bad input or usage, 3 refused, 4 store unavailable.
# `scan` and `policy diff` (cli_scan.py): 1 findings at or above --fail-on / a control downgrade, 5 scan incomplete.
EXIT_OK, EXIT_AUDIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
_BAD_INPUT_PREFIXES = ("input.", "policy.invalid", "keys.", "audit.bad_key", "audit.bad_export", "store.invalid_url")

app = typer.Typer(help="Interlock: a second, independent control between a request and its execution.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Grant signing keys.", no_args_is_help=True)
witness_app = typer.Typer(help="A witness that cosigns other logs' checkpoints (C2SP tlog-witness).",
                          no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(witness_app, name="witness")

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy file \\[env: INTERLOCK_POLICY; default HOME/policy.yaml].")
]


def exit_code_for(error: InterlockError) -> int:
    if error.code.startswith(_BAD_INPUT_PREFIXES):
        return EXIT_BAD_INPUT
    if error.code.startswith("store."):
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED


def _print(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False, default=str))


def _fail(error: InterlockError) -> NoReturn:
    _print(error.to_json())
    typer.echo(f"interlock: {error.code}: {error.message}", err=True)
    raise typer.Exit(exit_code_for(error))


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except InterlockError as error:
        _fail(error)


def _audit_failed() -> NoReturn:
    raise typer.Exit(EXIT_AUDIT_FAILED)


def _read(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        _fail(RequestError("input.unreadable", f"cannot read {path}: {exc.strerror}"))


def _gate(home: Path | None, policy: Path | None) -> Gate:
    return Home.resolve(home, policy).open_gate()


def _with_gate(home: Path | None, policy: Path | None, work: Callable[[Gate], Any]) -> Any:
    with _refusals():
        gate = _gate(home, policy)
        try:
            return work(gate)
        finally:
            gate.store.close()


@app.command()
def submit(request: Annotated[Path, typer.Argument(help="Request JSON file, or - for stdin.")],
           home: HomeOpt = None, policy: PolicyOpt = None) -> None:
    """Submit an action request; prints request_id, outcome, grant (when allowed), reasons, explanation."""
    with _refusals():
        parsed = parse_request(_read(request))  # bad input is refused before the home is touched
    _print(_with_gate(home, policy, lambda gate: gate.submit(parsed).to_json()))


@app.command()
def approve(request_id: str,
            approver: Annotated[str, typer.Option("--as", help="Approver id, e.g. user:alice.")],
            channel: Annotated[str, typer.Option("--channel", help="Channel the approval comes over.")],
            reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approve.")] = False,
            comment: Annotated[str, typer.Option("--comment")] = "",
            binding_code: Annotated[str | None, typer.Option(
                "--binding-code", help="The code the requester gave you; needed to approve a sensitive action."
            )] = None,
            home: HomeOpt = None, policy: PolicyOpt = None) -> None:
    """Approve (or --reject) a pending request; prints the new state, with the grant once quorum is met."""
    _print(_with_gate(home, policy, lambda gate: gate.decide_approval(
        request_id, approver, channel, reject=reject, comment=comment, binding_code=binding_code).to_json()))


@app.command()
def status(request_id: str, home: HomeOpt = None, policy: PolicyOpt = None) -> None:
    """Show a request's state, approvals and grant."""
    _print(_with_gate(home, policy, lambda gate: gate.status(request_id).to_json()))


@app.command()
def consume(action: Annotated[Path, typer.Argument(help="JSON file with action, resource, params (- for stdin).")],
            grant: Annotated[str, typer.Option("--grant", help="The grant token.")],
            executor: Annotated[str, typer.Option("--executor", help="Who is about to run the action.")],
            home: HomeOpt = None, policy: PolicyOpt = None) -> None:
    """Consume a grant for exactly this action; exit 0 when it may run, 3 when refused."""
    with _refusals():
        parsed = parse_action(_read(action))  # bad input is refused before the home is touched
    consumed = _with_gate(home, policy, lambda gate: gate.consume(grant, executor, parsed))
    _print({"consumed": True, "jti": consumed.jti, "request_id": consumed.request_id,
            "executor": consumed.executor, "action": consumed.action, "digest": consumed.digest})


@app.command()
def report(jti: Annotated[str, typer.Argument(help="The consumed grant's id (jti).")],
           result: Annotated[str, typer.Option("--result", help="succeeded or failed.")],
           detail: Annotated[str, typer.Option("--detail")] = "",
           home: HomeOpt = None, policy: PolicyOpt = None) -> None:
    """Report the execution result of a consumed grant."""
    if result not in ("succeeded", "failed"):
        _fail(RequestError("input.invalid", "--result must be `succeeded` or `failed`"))
    grant = _with_gate(home, policy, lambda gate: gate.report(jti, result == "succeeded", detail))
    _print({"jti": grant.jti, "request_id": grant.request_id, "result": grant.result, "detail": grant.result_detail})


@app.command()
def check(request: Annotated[Path, typer.Argument(help="Request JSON file, or - for stdin.")],
          policy: Annotated[Path, typer.Option("--policy", help="Policy file to decide with.")]) -> None:
    """Dry run: the decision a policy makes on a request, with no state and no history."""
    document = _read(request)
    with _refusals():
        policy_obj = load_policy(_read(policy))
        decision = decide(policy_obj, parse_request(document), utc_now())
    # The same outcome words as `submit`, so a dry run reads like the real thing.
    _print({**decision.to_json(), "outcome": OUTCOME_STATUS[decision.outcome]})


@policy_app.command("validate")
def policy_validate(path: Path) -> None:
    """Load and compile a policy; exit 2 with the line of the first problem."""
    with _refusals():
        compiled = load_policy(_read(path))
    _print({"valid": True, "version": compiled.version, "rules": len(compiled.rules)})


@keys_app.command("jwks")
def keys_jwks(home: HomeOpt = None) -> None:
    """Print the grant verification keys as a JWK Set (creates the signing key on first use)."""
    with _refusals():
        _print(KeyRing.load_or_create(Home.resolve(home, None).keys_path).jwks())


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Data directory to create.")] = Path(".interlock")) -> None:
    """Create a starter home with a commented example policy."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / "policy.yaml"
    if target.exists():
        typer.echo(f"interlock: {target} exists; not overwritten", err=True)
    else:
        shutil.copyfile(EXAMPLES / "seed" / "policy.yaml", target)
    with _refusals():
        KeyRing.load_or_create(directory / "keys")
    _print({"home": str(directory), "policy": str(target)})


@app.command()
def demo() -> None:
    """Play the seed document's four scenarios on a fresh temporary home; exit 1 if any step misbehaves."""
    from interlock.demo import run

    raise typer.Exit(run())


@app.command()
def serve(host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8080,
          home: HomeOpt = None, policy: PolicyOpt = None,
          public_url: Annotated[str | None, typer.Option(
              "--public-url", help="Base URL of the inbox links in webhooks [default: http://HOST:PORT].")] = None,
          public_metrics: Annotated[bool, typer.Option(
              "--public-metrics", help="Serve /metrics without a credential (loopback hosts only).")] = False,
          access_log: Annotated[bool, typer.Option(
              "--access-log/--no-access-log",
              help="Log every HTTP request (the audit log records every decision either way).")] = False,
          worker_threads: Annotated[int | None, typer.Option(
              "--worker-threads", min=1, max=256, show_default=False,
              help="Threads that run store and gate calls at once [default: 12; more only contend for the GIL].")
          ] = None,
          checkpoint_every: Annotated[float, typer.Option(
              "--checkpoint-every", min=0.0, max=86400.0,
              help="Seconds between signed audit checkpoints while the log grows (0: only at shutdown).")] = 10.0,
          oidc: Annotated[Path | None, typer.Option(
              "--oidc", help="OpenID provider whose bearer JWTs principals may present (YAML; see README)"
                             " [default: HOME/oidc.yaml when it exists].")] = None,
          witnesses: Annotated[Path | None, typer.Option(
              "--witnesses", help="Witnesses that cosign each new checkpoint (YAML; see README)"
                                  " [default: HOME/witnesses.yaml when it exists].")] = None,
          ) -> None:
    """Serve the HTTP API (and /docs) on the home's store, keys and policy."""
    import uvicorn

    from interlock.checkpointer import Checkpointer
    from interlock.credentials import Credentials
    from interlock.oidc import open_bearer
    from interlock.server import create_app
    from interlock.webhooks import Webhooks
    from interlock.witnessing import read_witnesses

    with _refusals():
        if public_metrics and host not in ("127.0.0.1", "::1", "localhost"):
            raise RequestError("input.usage", f"--public-metrics is for a loopback host, not `{host}`: scrape"
                               " with an admin credential instead")
        gate = _gate(home, policy)
        try:
            location = Home.resolve(home, policy).path
            bearer = open_bearer(location, oidc, gate.clock)
            cosigners = read_witnesses(location, witnesses)
            webhooks = Webhooks.attach(gate, public_url or f"http://{host}:{port}")
        except InterlockError:
            gate.store.close()
            raise
    if bearer is not None:
        typer.echo(f"interlock: principals may also present bearer JWTs of {bearer.config.issuer}", err=True)
    checkpointer = Checkpointer(gate.ledger, checkpoint_every, cosigners)
    if checkpoint_every:
        checkpointer.start()
    gate.store.start_housekeeping()
    _collect_garbage_less_often()
    try:
        # Plain HTTP on loopback is development: the inbox's cookies cannot be `Secure` there. Anywhere else
        # they are, so a server reached over plain HTTP (not behind TLS) has no working inbox sign-in.
        uvicorn.run(create_app(gate, Credentials(gate.store, gate.clock), metrics_public=public_metrics,
                               dev_insecure_cookies=host in ("127.0.0.1", "::1", "localhost"), oidc=bearer,
                               **({"worker_threads": worker_threads} if worker_threads else {})),
                    host=host, port=port, access_log=access_log)
    finally:
        if webhooks is not None:
            webhooks.close()
        checkpointer.close()
        gate.store.close()


# Objects a server allocates before the first collection of the youngest generation (CPython's default: 700).
# A decision allocates thousands, so by default the collector runs several times per decision and its pauses
# are the tail of the latency; memory is freed by reference counting either way, only cycles wait longer.
GC_YOUNGEST_THRESHOLD = 50_000


def _collect_garbage_less_often() -> None:
    import gc

    gc.freeze()  # what start-up built lives as long as the process: never scan it again
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, middle, oldest)


register_credential_commands(app, _refusals, _print)
register_store_commands(app, _refusals, _print)
register_audit_commands(audit_app, _refusals, _print, _audit_failed)
register_break_glass_commands(app, _with_gate, _print)
register_mcp_commands(app, exit_code_for)
register_proxy_commands(app, _refusals)
register_scan_commands(app, policy_app, _refusals, _print)
register_witness_commands(witness_app, _refusals, _print)


def _is_usage_error(exc: BaseException) -> bool:
    # click's UsageError, or the one of the copy of click that newer typer versions carry inside.
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def main() -> None:
    """Run the CLI; usage errors follow the same one-line, JSON-on-stdout contract as every refusal."""
    try:
        code = app(prog_name="interlock", standalone_mode=False)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        ctx: Any = getattr(exc, "ctx", None)
        if ctx is not None and type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(ctx.get_help())
            sys.exit(EXIT_BAD_INPUT)
        message = " ".join(exc.format_message().split()) or "invalid usage"  # type: ignore[attr-defined]
        command = ctx.command_path if ctx else "interlock"
        error = RequestError("input.usage", f"{message} (see `{command} --help`)")
        _print(error.to_json())
        typer.echo(f"interlock: {error.code}: {error.message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        typer.echo("interlock: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
if __name__ == "__main__":
    main()
