"""This installation's version of Interlock, as its package metadata says."""

from __future__ import annotations

from importlib import metadata

__all__ = ["installed_version"]


def installed_version() -> str:
    """The installed package's version; "0+unknown" when running from a tree that was never installed."""
    try:
        return metadata.version("interlock")
    except metadata.PackageNotFoundError:
        return "0+unknown"
