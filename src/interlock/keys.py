"""Grant signing keys: Ed25519, created on first use in the data directory (mode 0600), published as JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlock.core.errors import KeyringError

_ACTIVE = "grant-signing.pem"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the `kid`."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(public_key))}
    return _b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


@dataclass(frozen=True)
class KeyRing:
    """The active signing key and every public key grants may still be verified with."""

    signing_key: Ed25519PrivateKey
    kid: str
    public_keys: dict[str, Ed25519PublicKey]

    @classmethod
    def generate(cls) -> KeyRing:
        """A fresh in-memory key ring (tests, dry runs)."""
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey) -> KeyRing:
        kid = thumbprint(key.public_key())
        return cls(key, kid, {kid: key.public_key()})

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        """Load `DIR/grant-signing.pem`, creating it (0600) on first use; retired `*.pub.pem` keys still verify."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / _ACTIVE
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; load theirs
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                    handle.flush()
                    os.fsync(handle.fileno())
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise KeyringError("keys.invalid", f"{path} is not an Ed25519 private key")
        ring = cls.from_private_key(loaded)
        for retired in sorted(directory.glob("*.pub.pem")):
            public = serialization.load_pem_public_key(retired.read_bytes())
            if isinstance(public, Ed25519PublicKey):
                ring.public_keys.setdefault(thumbprint(public), public)
        return ring

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set."""
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": _b64url(_raw(key)), "kid": kid, "alg": "EdDSA", "use": "sig"}
                for kid, key in self.public_keys.items()
            ]
        }
