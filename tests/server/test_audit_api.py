"""The audit log over HTTP: the public checkpoint and key, inclusion proofs (admin) and consistency proofs."""

from __future__ import annotations

import pytest

from interlock.audit.checkpoint import VerifierKey, open_checkpoint
from interlock.audit.merkle import leaf_hash, verify_consistency, verify_inclusion

from .conftest import Api, expect_error, submission


def _log_grows(api: Api, count: int) -> None:
    for amount in range(count):
        assert api.call("POST", "/v1/requests", "agent", json=submission(params={
            "amount": 10 + amount, "currency": "EUR", "recipient": "DE89370400440532013000"})).status_code == 201


def _signed(api: Api) -> tuple[VerifierKey, int, bytes]:
    key = VerifierKey.parse(api.call("GET", "/v1/audit/public-key").json()["public_key"])
    response = api.call("GET", "/v1/audit/checkpoint")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(response.text, key, key.name)
    return key, checkpoint.size, checkpoint.root


def test_there_is_no_checkpoint_until_one_is_signed(api: Api) -> None:
    expect_error(api.call("GET", "/v1/audit/checkpoint"), 404, "audit.no_checkpoint")
    expect_error(api.call("GET", "/v1/audit/entries/0/proof", "admin"), 404, "audit.no_checkpoint")


def test_every_entry_has_an_inclusion_proof_against_the_public_checkpoint(api: Api) -> None:
    _log_grows(api, 5)
    api.gate.ledger.checkpoint()
    key, size, root = _signed(api)
    assert key.name == api.gate.store.log_origin()
    assert size == len(list(api.gate.store.audit_entries()))  # 7 credentials and 5 requests

    for index in range(size):
        body = api.call("GET", f"/v1/audit/entries/{index}/proof", "admin").json()
        assert (body["index"], body["size"]) == (index, size)
        leaf = body["leaf"].encode()
        assert body["leaf_hash"] == leaf_hash(leaf).hex()
        proof = [bytes.fromhex(h) for h in body["proof"]]
        assert verify_inclusion(leaf_hash(leaf), index, size, proof, root)
        assert not verify_inclusion(leaf_hash(leaf + b" "), index, size, proof, root)


def test_a_consistency_proof_joins_two_checkpoints(api: Api) -> None:
    _log_grows(api, 2)
    first = api.gate.ledger.checkpoint()
    _log_grows(api, 3)
    api.gate.ledger.checkpoint()
    _, size, root = _signed(api)
    assert first is not None and first.size < size

    body = api.call("GET", "/v1/audit/consistency", params={"from": first.size}).json()
    assert (body["from"], body["to"]) == (first.size, size)
    proof = [bytes.fromhex(h) for h in body["proof"]]
    assert verify_consistency(first.size, size, first.root, root, proof)
    assert not verify_consistency(first.size, size, root, root, proof)
    explicit = api.call("GET", "/v1/audit/consistency", params={"from": first.size, "to": size}).json()
    assert explicit == body


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/v1/audit/entries/999/proof", 404, "audit.out_of_range"),
    ("/v1/audit/entries/0/proof?size=3", 404, "audit.out_of_range"),  # no checkpoint at that size
    ("/v1/audit/entries/-1/proof", 400, "input.invalid"),
    ("/v1/audit/consistency?from=999", 404, "audit.out_of_range"),
    ("/v1/audit/consistency?from=1&to=3", 404, "audit.out_of_range"),
    ("/v1/audit/consistency", 400, "input.invalid"),
])
def test_proofs_for_trees_no_checkpoint_signed_are_refused(api: Api, path: str, status: int, code: str) -> None:
    _log_grows(api, 1)
    api.gate.ledger.checkpoint()
    expect_error(api.call("GET", path, "admin"), status, code)


@pytest.mark.parametrize("who", [None, "agent", "alice"])
def test_inclusion_proofs_with_the_entry_are_for_admins_only(api: Api, who: str | None) -> None:
    _log_grows(api, 1)
    api.gate.ledger.checkpoint()
    response = api.call("GET", "/v1/audit/entries/0/proof", who)
    assert response.status_code == (401 if who is None else 403), response.text
