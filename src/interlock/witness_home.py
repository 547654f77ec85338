"""A witness's directory: its signing key, its config (name and the logs it witnesses) and its state.

    DIR/witness.yaml          name: witness.example/w1
                              logs: [<each log's checkpoint verifier key: origin+keyid+key>]
    DIR/witness-signing.pem   Ed25519 private key (0600), created by `interlock witness init`
    DIR/witness.db            what it cosigned, per log (SQLite)

A log's checkpoint key is named by the log's origin (as C2SP checkpoints are), so a key alone says which
log it is for; a log may be given several keys (one per gate node, or across a key rotation).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from interlock.audit.checkpoint import VerifierKey, check_key_name
from interlock.audit.cosignature import Cosigner
from interlock.audit.witness import Witness
from interlock.config_files import load_model, read_bytes
from interlock.core.errors import AuditError, RequestError
from interlock.keys import load_or_create_key
from interlock.store.witness_state import SqliteWitnessState

CONFIG = "witness.yaml"
KEY = "witness-signing.pem"
STATE = "witness.db"


class WitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256, description="The witness's key name, e.g. witness.example/w1")
    logs: tuple[str, ...] = Field(default=(), description="Checkpoint verifier keys of the logs it witnesses")


@dataclass(frozen=True)
class WitnessHome:
    path: Path

    def init(self, name: str) -> Cosigner:
        """Create the directory, its key and a config naming no log yet; an existing witness is kept as it is."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.path / CONFIG
        if not config.exists():
            check_key_name(name, "input.invalid")
            _private(self.path / KEY)
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(yaml.safe_dump({"name": name}) + "# The checkpoint verifier key of each log to witness"
                             " (`interlock audit public-key` on a gate):\nlogs: []\n")
        cosigner = self.cosigner()
        if cosigner.name != name:
            raise RequestError("input.invalid", f"a witness named {cosigner.name!r} already lives in {self.path}")
        return cosigner

    def config(self) -> WitnessConfig:
        path = self.path / CONFIG
        if not path.is_file():
            raise RequestError("input.unreadable", f"no witness at {self.path}: run `interlock witness init` first")
        return load_model(read_bytes(path), WitnessConfig, "witness config", "expected a mapping with name, logs")

    def cosigner(self) -> Cosigner:
        name = self.config().name
        if not (self.path / KEY).is_file():  # never a new key in place of a lost one: nobody would trust it
            raise RequestError("input.unreadable", f"no witness key {self.path / KEY}")
        try:
            return Cosigner(name, _private(self.path / KEY))
        except AuditError as error:
            raise RequestError("input.invalid", f"witness config: {error.message}") from None

    @contextmanager
    def open(self) -> Iterator[Witness]:
        """The witness as `interlock witness serve` runs it; its state is closed after."""
        logs: dict[str, list[VerifierKey]] = {}
        for vkey in self.config().logs:
            try:
                key = VerifierKey.parse(vkey)
            except AuditError as error:
                raise RequestError("input.invalid", f"witness config: log key {vkey!r}: {error.message}") from None
            logs.setdefault(key.name, []).append(key)
        if not logs:
            raise RequestError("input.invalid", f"{self.path / CONFIG} names no log to witness (`logs:`)")
        cosigner = self.cosigner()
        state = SqliteWitnessState(self.path / STATE)
        try:
            yield Witness(cosigner, logs, state, lambda: int(time.time()))
        finally:
            state.close()


def _private(path: Path) -> Ed25519PrivateKey:
    private = load_or_create_key(path).private_key
    assert isinstance(private, Ed25519PrivateKey)
    return private
