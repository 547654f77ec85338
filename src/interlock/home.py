"""The data home: where the store, the keys and the policy live, and how a Gate is built from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from interlock.core.errors import PolicyError
from interlock.core.policy import Policy, load_policy
from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.base import Store
from interlock.store.select import open_notifier, open_store

DEFAULT_HOME = ".interlock"
EXAMPLES = Path(__file__).parent / "examples"


@dataclass(frozen=True)
class Home:
    """A data directory: `interlock.db` (unless `store_url` names a PostgreSQL store), `keys/`, and by default
    `policy.yaml`."""

    path: Path
    policy_path: Path
    store_url: str | None = None

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None, policy: str | os.PathLike[str] | None) -> Home:
        """`--home`/`--policy`, else `INTERLOCK_HOME`/`INTERLOCK_POLICY`, else `./.interlock` and its policy;
        the store is `INTERLOCK_STORE` (a postgresql:// URL), else the SQLite file in the home."""
        path = Path(home or os.environ.get("INTERLOCK_HOME") or DEFAULT_HOME)
        policy_path = Path(policy or os.environ.get("INTERLOCK_POLICY") or path / "policy.yaml")
        return cls(path, policy_path, os.environ.get("INTERLOCK_STORE") or None)

    @property
    def store_path(self) -> Path:
        return self.path / "interlock.db"

    @property
    def keys_path(self) -> Path:
        return self.path / "keys"

    def load_policy(self) -> Policy:
        try:
            text = self.policy_path.read_bytes()
        except OSError as exc:
            raise PolicyError("policy.invalid", f"cannot read policy {self.policy_path}: {exc.strerror}") from None
        return load_policy(text)

    def open_store(self) -> Store:
        """This home's store: the PostgreSQL database at `store_url`, else the SQLite file (created on first use)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return open_store(self.store_url, self.store_path)

    def open_gate(self) -> Gate:
        """A gate on this home's store, keys and policy (all created on first use but the policy)."""
        policy = self.load_policy()
        keys = KeyRing.load_or_create(self.keys_path)
        return Gate(self.open_store(), policy, keys, notifier=open_notifier(self.store_url))

    def open_credentials(self) -> Credentials:
        """The credential registry in this home's store (no policy needed)."""
        return Credentials(self.open_store())
