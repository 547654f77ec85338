"""Signing keys, Ed25519, created on first use in the data directory (mode 0600).

Grants are signed with one key (published as JWKS); audit checkpoints with another, the log's own, so
that the key a gate uses on every request is not also the one that vouches for its record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from interlock.audit.checkpoint import NoteSigner
from interlock.core.errors import KeyringError

_ACTIVE = "grant-signing.pem"
_LOG = "log-signing.pem"


def _load(pem: bytes, path: Path, *, private: bool) -> OKPKey:
    try:
        key = OKPKey.import_key(pem)
    except (JoseError, ValueError, TypeError) as exc:
        raise KeyringError("keys.invalid", f"{path} is not an Ed25519 key: {exc}") from None
    if key.curve_name != "Ed25519" or key.is_private != private:
        raise KeyringError("keys.invalid", f"{path} is not an Ed25519 {'private' if private else 'public'} key")
    return key


def _new_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", private=True)


def load_or_create_key(path: Path) -> OKPKey:
    """An Ed25519 private key from a PEM file, created (0600) on first use; `keys.invalid` if it is not one."""
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; load theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_new_key().as_pem(private=True))
                handle.flush()
                os.fsync(handle.fileno())
    return _load(path.read_bytes(), path, private=True)


@dataclass(frozen=True)
class KeyRing:
    """The active signing key and every public key grants may still be verified with, by `kid`.

    The `kid` is the key's RFC 7638 JWK thumbprint.
    """

    signing_key: OKPKey
    kid: str
    public_keys: dict[str, OKPKey]
    log_key: OKPKey

    @classmethod
    def generate(cls) -> KeyRing:
        """A fresh in-memory key ring (tests, dry runs)."""
        return cls.from_private_key(_new_key(), _new_key())

    @classmethod
    def from_private_key(cls, key: OKPKey, log_key: OKPKey) -> KeyRing:
        kid = key.thumbprint()
        public = OKPKey.import_key(key.as_dict(private=False))
        return cls(key, kid, {kid: public}, log_key)

    def log_signer(self, origin: str) -> NoteSigner:
        """The signer of the audit log's checkpoints, under the log's origin as its key name."""
        private = self.log_key.private_key
        assert isinstance(private, Ed25519PrivateKey)
        return NoteSigner(origin, private)

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        """Load `DIR/grant-signing.pem` and `DIR/log-signing.pem`, each created (0600) on first use.

        Retired grant keys, `*.pub.pem`, still verify grants.
        """
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ring = cls.from_private_key(load_or_create_key(directory / _ACTIVE), load_or_create_key(directory / _LOG))
        for retired in sorted(directory.glob("*.pub.pem")):
            public = _load(retired.read_bytes(), retired, private=False)
            ring.public_keys.setdefault(public.thumbprint(), public)
        return ring

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set."""
        return {
            "keys": [
                {**key.as_dict(private=False), "kid": kid, "alg": "EdDSA", "use": "sig"}
                for kid, key in self.public_keys.items()
            ]
        }
