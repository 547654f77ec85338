"""`interlock audit verify|reconcile|checkpoint|export|public-key`: the audit log, its checkpoints, offline checks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.audit.checkpoint import VerifierKey
from interlock.audit.export import export, read_export, verify_export
from interlock.audit.log import Verification
from interlock.audit.reconcile import consumed_grants, parse_executions, reconcile
from interlock.core.errors import AuditError, RequestError, StoreError
from interlock.gate import utc_now
from interlock.home import Home
from interlock.keys import KeyRing
from interlock.ledger import Ledger

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")
]
SinceOpt = Annotated[list[Path] | None, typer.Option(
    "--since", help="A checkpoint seen earlier (signed note file): the log must still extend it. Repeatable.")]
Refusals = Callable[[], AbstractContextManager[None]]
Emit = Callable[[Any], None]


@contextmanager
def _ledger(home: Path | None) -> Iterator[Ledger]:
    location = Home.resolve(home, None)
    if location.store_url is None and not location.store_path.exists():
        raise StoreError("store.unavailable", f"no store at {location.store_path}")
    keys = KeyRing.load_or_create(location.keys_path)
    ledger = Ledger(location.open_store(), keys, utc_now)
    try:
        yield ledger
    finally:
        ledger.store.close()


def _text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError("input.unreadable", f"cannot read {what} {path}: {exc}") from None


def _key_text(value: str) -> str:
    """A C2SP verifier key given inline, or the key in the file `value` names."""
    path = Path(value)
    return _text(path, "public key").strip() if "+" not in value and path.is_file() else value.strip()


def _public_key(value: str) -> VerifierKey:
    return VerifierKey.parse(_key_text(value))


def _export(path: Path, public_key: str | None) -> tuple[bytes, VerifierKey]:
    """An export file's bytes and the key the caller trusts to verify it (never the key the file carries)."""
    if public_key is None:
        raise RequestError("input.usage", "--export needs --public-key: the key you trust, not the file's")
    try:
        return path.read_bytes(), _public_key(public_key)
    except OSError as exc:
        raise RequestError("input.unreadable", f"cannot read {path}: {exc.strerror}") from None


def register(app: typer.Typer, refusals: Refusals, emit: Emit, failed: Callable[[], None]) -> None:
    """Add the audit commands to `app`; `failed()` ends a command whose log does not verify."""

    def report(result: Verification) -> None:
        emit(result.to_json())
        if not result.ok:
            failed()

    @app.command("verify")
    def audit_verify(
        home: HomeOpt = None,
        export_file: Annotated[Path | None, typer.Option(
            "--export", help="Verify this export offline instead of a home (needs --public-key).")] = None,
        public_key: Annotated[str | None, typer.Option(
            "--public-key", help="The log's verifier key (C2SP note key), inline or a file holding it.")] = None,
        since: SinceOpt = None,
        witness_keys: Annotated[list[str] | None, typer.Option(
            "--witness-key", help="A witness key (type 0x04), inline or a file: each --since checkpoint, and an "
                                  "--export's own, must carry its valid cosignature. Repeatable.")] = None,
    ) -> None:
        """Recompute the log's hashes and check it against every signed checkpoint; exit 1 naming each problem."""
        from interlock.audit.cosignature import CosignerKey, uncosigned

        with refusals():
            seen = [_text(path, "checkpoint") for path in since or ()]
            cosigned = [(f"checkpoint {number} seen earlier", note) for number, note in enumerate(seen, 1)]
            witnesses = [CosignerKey.parse(_key_text(value)) for value in witness_keys or ()]
            if export_file is not None:
                document, key = _export(export_file, public_key)
                result = verify_export(document, key, seen)
                cosigned.append(("the export's checkpoint", read_export(document)[1]))
            else:
                if witnesses and not seen:
                    raise RequestError("input.invalid", "--witness-key checks the --since checkpoints (or an"
                                       " --export's): give at least one")
                with _ledger(home) as ledger:
                    result = ledger.verify(since=seen)
            problems = uncosigned(cosigned, witnesses)
            if problems:
                result = dataclasses.replace(result, ok=False, problems=(*result.problems, *problems))
        report(result)

    @app.command("reconcile")
    def audit_reconcile(
        executions: Annotated[Path, typer.Option(
            "--executions", help="JSON lines, one action the downstream system ran per line (- for stdin).")],
        home: HomeOpt = None,
        export_file: Annotated[Path | None, typer.Option(
            "--export", help="Reconcile against this export instead of a home (needs --public-key).")] = None,
        public_key: Annotated[str | None, typer.Option(
            "--public-key", help="The log's verifier key (C2SP note key), inline or a file holding it.")] = None,
    ) -> None:
        """List the executions no consumed grant accounts for (bypasses caught at run time); exit 1 if any."""
        with refusals():
            if str(executions) == "-":
                lines = typer.get_binary_stream("stdin").read()
            else:
                lines = _text(executions, "execution log").encode()
            ran = parse_executions(lines)  # every malformed line is listed before the log is touched
            if export_file is not None:
                document, key = _export(export_file, public_key)
                log = verify_export(document, key)
                leaves = [entry.encode() for entry in read_export(document)[0]]
            else:
                with _ledger(home) as ledger:
                    try:
                        ledger.checkpoint()  # as `audit export` does: sign what is there, then check against it
                    except AuditError:
                        pass  # a log that contradicts its checkpoints: `verify` names the problem, and this fails
                    log = ledger.verify()
                    leaves = [stored.leaf for stored in ledger.store.audit_entries()]
            result = reconcile(consumed_grants(leaves), ran, signed=log.signed)
        # A log that does not verify cannot vouch for its grants: the answer is listed, and it fails.
        emit({**result.to_json(), "log": log.to_json()})
        if not (result.ok and log.ok):
            failed()

    @app.command("checkpoint")
    def audit_checkpoint(home: HomeOpt = None) -> None:
        """Sign a checkpoint of the log now (if it grew) and print the newest one."""
        with refusals(), _ledger(home) as ledger:
            latest = ledger.checkpoint()
            if latest is None:
                raise AuditError("audit.no_checkpoint", "the log is empty: there is nothing to sign")
            emit({"size": latest.size, "root": latest.root.hex(), "checkpoint": latest.note})

    @app.command("export")
    def audit_export(
        home: HomeOpt = None,
        out: Annotated[Path | None, typer.Option("--out", help="Write the export here instead of stdout.")] = None,
    ) -> None:
        """Sign a checkpoint, then write every entry and it as one JSON document for `audit verify --export`."""
        with refusals(), _ledger(home) as ledger:
            latest = ledger.checkpoint()
            if latest is None:
                raise AuditError("audit.no_checkpoint", "the log is empty: there is nothing to export")
            entries = ledger.store.audit_entries(0, latest.size)
            document = export(entries, ledger.key(), latest.note)
            if out is None:
                emit(document)
            else:
                out.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
                emit({"exported": str(out), "entries": latest.size, "checkpoint": latest.note})

    @app.command("public-key")
    def audit_public_key(home: HomeOpt = None) -> None:
        """Print the log's verifier key (C2SP signed-note key): give it to whoever checks exports and checkpoints."""
        with refusals(), _ledger(home) as ledger:
            emit({"public_key": ledger.key().encode(), "origin": ledger.store.log_origin()})

    @app.command("witness")
    def audit_witness(
        url: Annotated[str, typer.Option("--url", help="The witness's submission prefix (C2SP tlog-witness).")],
        key: Annotated[str, typer.Option("--key", help="The witness's cosigner key (name+keyid+key, type 0x04), "
                                                       "inline or a file holding it.")],
        out: Annotated[Path | None, typer.Option("--out", help="Write the cosigned checkpoint (signed note) here; "
                                                               "keep it for `audit verify --since`.")] = None,
        home: HomeOpt = None,
    ) -> None:
        """Have the newest signed checkpoint cosigned by a witness that checks it extends what it saw before."""
        from interlock.audit.cosignature import CosignerKey
        from interlock.witnessing import cosign

        with refusals(), _ledger(home) as ledger:
            cosigned = cosign(ledger, url, CosignerKey.parse(_key_text(key)))
            if out is not None:
                out.write_text(cosigned.note, encoding="utf-8")
            emit({"witness": cosigned.witness, "size": cosigned.size, "cosigned_at": cosigned.at,
                  "checkpoint": cosigned.note, **({"out": str(out)} if out else {})})
