"""Health, readiness, keys, audit verification and the OpenAPI schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from interlock.store.sqlite import SqliteStore

from .conftest import Api, expect_error, submission


def test_healthz_answers_without_credentials(api: Api) -> None:
    response = api.call("GET", "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_only_while_the_store_answers(api: Api, server_store: SqliteStore, tmp_path: Path) -> None:
    assert api.call("GET", "/readyz").json() == {"status": "ready"}
    server_store.close()  # no pooled connection survives: the next call opens the file again
    (tmp_path / "interlock.db").rename(tmp_path / "moved.db")
    (tmp_path / "interlock.db").mkdir()  # the store's path is now something SQLite cannot open
    expect_error(api.call("GET", "/readyz"), 503, "store.unavailable")
    assert api.call("GET", "/healthz").status_code == 200, "alive, though not ready"
    expect_error(api.call("POST", "/v1/requests", "agent", json=submission()), 503, "store.unavailable")


def test_readyz_is_not_ready_on_an_empty_file_in_place_of_the_store(
    api: Api, server_store: SqliteStore, tmp_path: Path
) -> None:
    server_store.close()
    for name in ("interlock.db", "interlock.db-wal", "interlock.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    sqlite3.connect(tmp_path / "interlock.db").close()
    expect_error(api.call("GET", "/readyz"), 503, "store.unavailable")


def test_jwks_is_public_and_holds_only_the_public_key(api: Api) -> None:
    jwks = api.call("GET", "/.well-known/jwks.json").json()
    assert jwks == api.gate.keys.jwks()
    assert all("d" not in key for key in jwks["keys"])


def test_audit_verify_is_for_admins_and_names_a_tampered_entry(api: Api, tmp_path: Path) -> None:
    api.call("POST", "/v1/requests", "agent", json=submission())
    assert api.call("GET", "/v1/audit/verify", "admin").json()["ok"] is True
    db = sqlite3.connect(tmp_path / "interlock.db")
    db.execute("UPDATE audit SET leaf = CAST(replace(CAST(leaf AS TEXT), '48000', '480') AS BLOB) WHERE idx = 7")
    db.commit()
    db.close()
    verification = api.call("GET", "/v1/audit/verify", "admin").json()
    assert verification["ok"] is False and verification["problems"]


def test_the_openapi_schema_documents_every_endpoint_with_its_bodies(api: Api) -> None:
    schema = api.call("GET", "/openapi.json").json()
    assert set(schema["paths"]) == {
        "/v1/requests", "/v1/requests/{request_id}", "/v1/requests/{request_id}/approvals", "/v1/grants/consume",
        "/v1/grants/{jti}/result", "/.well-known/jwks.json", "/v1/audit/verify", "/healthz", "/readyz",
        "/metrics", "/v1/requests/{request_id}/break-glass", "/v1/requests/{request_id}/break-glass/reviews",
        "/v1/audit/public-key", "/v1/audit/checkpoint", "/v1/audit/entries/{index}/proof", "/v1/audit/consistency"}
    components = schema["components"]["schemas"]
    documented = {"SubmitBody", "ApprovalBody", "ConsumeBody", "ResultBody", "RequestStateBody", "ErrorBody",
                  "BreakGlassBody", "ReviewBody"}
    assert documented <= set(components)
    assert "channel" not in components["ApprovalBody"]["properties"]
    approvals = schema["paths"]["/v1/requests/{request_id}/approvals"]["post"]
    assert approvals["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApprovalBody"}
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert api.call("GET", "/docs").status_code == 200
