"""Store tests (a package, so `store.conftest` never shadows the root `conftest` module)."""
