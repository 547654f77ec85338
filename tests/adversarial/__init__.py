"""Attacks on the invariants (a package, so spawned race processes can import its worker by name)."""
