"""End-to-end tests (a package, so `e2e.conftest` never shadows the root `conftest` module)."""
