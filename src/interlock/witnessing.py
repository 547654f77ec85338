"""Getting the log's newest checkpoint cosigned by a witness (C2SP tlog-witness, the client's side).

The witness holds the size it last cosigned for this log. The client does not keep it: it asks with `old 0`,
and a witness that holds more answers 409 with its size; the client then sends the consistency proof from
that size. A witness holding more entries than the log's newest checkpoint means the log lost entries (a
restored backup, a truncation) or showed the witness another history: refused, never "fixed".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from interlock.audit.checkpoint import b64, parse_note
from interlock.audit.cosignature import CosignerKey, cosignatures, with_cosignature
from interlock.config_files import load_model, read_bytes
from interlock.core.errors import AuditError, RequestError
from interlock.ledger import Ledger

TIMEOUT_S = 10.0
CONFIG_FILE = "witnesses.yaml"


class _WitnessEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://\S+$", description="The witness's submission prefix")
    key: str = Field(description="Its cosigner key: name+keyid+base64(0x04 || Ed25519 key)")


class _WitnessesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    witnesses: tuple[_WitnessEntry, ...] = Field(min_length=1)


@dataclass(frozen=True)
class WitnessTarget:
    """A witness a gate asks to cosign its checkpoints."""

    url: str
    key: CosignerKey


def read_witnesses(home: Path, path: Path | None) -> list[WitnessTarget]:
    """The witnesses `path` names, else `HOME/witnesses.yaml` when it exists; none when neither does.

        witnesses:
          - url: https://witness.example
            key: witness.example/w1+…
    """
    if path is None:
        path = home / CONFIG_FILE
        if not path.exists():
            return []
    config = load_model(read_bytes(path), _WitnessesFile, "witnesses file", "expected a mapping with `witnesses`")
    targets = []
    for entry in config.witnesses:
        try:
            targets.append(WitnessTarget(entry.url, CosignerKey.parse(entry.key)))
        except AuditError as error:
            raise RequestError("input.invalid", f"witnesses file: {entry.key!r}: {error.message}") from None
    return targets


@dataclass(frozen=True)
class Cosigned:
    """The newest signed checkpoint as now stored, with the witness's verified cosignature line (and those of
    other witnesses before), the log's size it covers, and the cosignature's time."""

    note: str
    size: int
    witness: str
    at: int


def cosign(ledger: Ledger, url: str, witness: CosignerKey) -> Cosigned:
    """Have the log's newest signed checkpoint cosigned by `witness` at `url`; the cosignature is stored with it."""
    latest = ledger.latest()
    if latest is None:
        raise AuditError("audit.no_checkpoint", "the log has no signed checkpoint yet: `interlock audit checkpoint`")
    endpoint = url.rstrip("/") + "/add-checkpoint"
    with httpx.Client(timeout=TIMEOUT_S) as http:
        old = 0
        for _ in range(2):  # at most: once to learn the witness's size, once with the proof from it
            proof = ledger.consistency_proof(old, latest.size)["proof"] if old else []
            body = "".join([f"old {old}\n", *(f"{b64(bytes.fromhex(h))}\n" for h in proof), "\n", latest.note])
            answer = _post(http, endpoint, body)
            if answer.status_code != 409 or answer.headers.get("content-type", "").split(";")[0] != "text/x.tlog.size":
                break
            held = _held_size(answer.text)
            if held > latest.size:
                raise AuditError("audit.witness_ahead", f"the witness cosigned {held} entries of this log, more than"
                                 f" the {latest.size} of its newest checkpoint: entries were lost, or the witness"
                                 " was shown another history")
            if held == old:  # it holds the size sent, with another root: not the history it cosigned
                raise AuditError("audit.witness_conflict", f"the witness cosigned another history of {held} entries"
                                 " of this log: the log's entries are not the ones it saw")
            old = held
    if answer.status_code != 200:
        raise AuditError("audit.witness_refused", f"the witness answered {answer.status_code}:"
                         f" {answer.text.strip()[:300]}")
    cosigned = latest.note + answer.text
    try:
        found = cosignatures(cosigned, [witness])
    except AuditError as error:
        raise AuditError("audit.bad_cosignature", f"the witness's answer: {error.message}") from None
    if witness.name not in found:
        raise AuditError("audit.bad_cosignature", f"the witness's answer holds no cosignature of {witness.name}")
    ours = [s for s in parse_note(cosigned).signatures if (s.name, s.key_id) == (witness.name, witness.key_id)]
    line = ours[-1].line()  # the answer's: it comes after any earlier one the stored note held
    stored = ledger.store.change_checkpoint_note(latest.size, lambda note: with_cosignature(note, line))
    return Cosigned(stored.note, latest.size, witness.name, found[witness.name])


def _post(http: httpx.Client, endpoint: str, body: str) -> httpx.Response:
    try:
        return http.post(endpoint, content=body.encode())
    except httpx.HTTPError as exc:
        raise AuditError("audit.witness_unreachable", f"cannot reach the witness at {endpoint}: {exc}") from None


def _held_size(text: str) -> int:
    value = text.removesuffix("\n")
    if not value.isdecimal() or not value.isascii() or len(value) > 19:
        raise AuditError("audit.witness_refused", f"the witness's 409 does not hold a tree size: {text[:40]!r}")
    return int(value)
