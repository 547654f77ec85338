"""`interlock audit reconcile`: executions a downstream system reports, each accounted for by one consumed grant."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit.reconcile import ConsumedGrant, Execution, consumed_grants, parse_executions, reconcile
from interlock.core.action import action_digest
from interlock.core.errors import GrantError, RequestError
from interlock.gate import Gate

from .e2e_support import Run

KNOWN = "DE89370400440532013000"
EXECUTOR = "payments-service"


def payment(amount: int) -> dict[str, Any]:
    """A small transfer to a known recipient: the seed policy allows it, so submitting it yields a grant."""
    return {
        "principal": {"id": "agent:finance-assistant", "kind": "agent", "attributes": {"known_recipients": [KNOWN]}},
        "action": "payments.transfer", "resource": "account:treasury",
        "params": {"amount": amount, "currency": "EUR", "recipient": KNOWN}, "channel": "api",
    }


def spec(amount: int) -> dict[str, Any]:
    request = payment(amount)
    return {"action": request["action"], "resource": request["resource"], "params": request["params"]}


def issue(gate: Gate, amount: int) -> str:
    state = gate.submit(payment(amount))
    assert state.outcome == "allowed" and state.grant, state
    return state.grant


def lines(*executions: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in executions) + b"\n"


def reconciled(gate: Gate, *executions: dict[str, Any]) -> dict[str, Any]:
    leaves = [stored.leaf for stored in gate.store.audit_entries()]
    return reconcile(consumed_grants(leaves), parse_executions(lines(*executions))).to_json()


# --- against a real gate and its audit log ----------------------------------------------------------------


def test_executions_that_each_have_a_consumed_grant_reconcile(gate: Gate) -> None:
    first, second = issue(gate, 100), issue(gate, 200)
    consumed = [gate.consume(first, EXECUTOR, spec(100)), gate.consume(second, EXECUTOR, spec(200))]
    result = reconciled(gate, {**spec(200), "executor": EXECUTOR, "id": "tx-2"},
                        {"digest": action_digest(**spec(100))})
    assert (result["ok"], result["executions"], result["matched"], result["unmatched"]) == (True, 2, 2, [])
    assert [(m["line"], m["jti"]) for m in result["matches"]] == [(1, consumed[1].jti), (2, consumed[0].jti)]
    entries = [json.loads(stored.leaf) for stored in gate.store.audit_entries()]
    assert all(entries[m["entry"]]["kind"] == "grant.consumed" for m in result["matches"])


def test_each_bypass_is_listed_with_why_no_grant_accounts_for_it(gate: Gate) -> None:
    first, unconsumed, third = issue(gate, 100), issue(gate, 200), issue(gate, 300)
    jti_first = gate.consume(first, EXECUTOR, spec(100)).jti
    with pytest.raises(GrantError):
        gate.consume(unconsumed, EXECUTOR, spec(999))  # refused: a refusal consumes nothing
    jti_third = gate.consume(third, EXECUTOR, spec(300)).jti
    result = reconciled(
        gate,
        {**spec(100), "id": "tx-1"},
        {**spec(100), "id": "tx-1-again"},
        spec(200),
        spec(999),
        {**spec(300), "executor": "other-service"},
        {**spec(300), "jti": jti_first},
        {**spec(300), "jti": "grt_unknown"},
        {**spec(300), "jti": jti_third, "executor": EXECUTOR, "at": "2026-11-25T09:00:03Z"},
    )
    assert not result["ok"] and (result["executions"], result["matched"]) == (8, 2)
    assert [(u["line"], u["reason"]) for u in result["unmatched"]] == [
        (2, "every grant consumed for this action (1) already accounts for another execution (line 1): a replay"),
        (3, "no grant was consumed for this action"),
        (4, "no grant was consumed for this action"),
        (5, "grants for this action were consumed only by `payments-service`, not `other-service`"),
        (6, f"grant `{jti_first}` was consumed for another action (digest {action_digest(**spec(100))[:12]}…)"),
        (7, "grant `grt_unknown` was never consumed"),
    ]
    assert result["unmatched"][0]["id"] == "tx-1-again"
    assert [(m["line"], m["jti"]) for m in result["matches"]] == [(1, jti_first), (8, jti_third)]
    assert result["consumed_without_execution"] == []


def test_a_replayed_grant_is_caught_however_the_executions_are_named(gate: Gate) -> None:
    grant = issue(gate, 100)
    jti = gate.consume(grant, EXECUTOR, spec(100)).jti
    result = reconciled(gate, {**spec(100), "jti": jti}, {**spec(100), "jti": jti, "executor": EXECUTOR})
    assert [(u["line"], u["reason"]) for u in result["unmatched"]] == [
        (2, f"grant `{jti}` already accounts for the execution on line 1: a replay")]


def test_consumed_grants_never_seen_executed_are_listed(gate: Gate) -> None:
    grant = issue(gate, 100)
    jti = gate.consume(grant, EXECUTOR, spec(100)).jti
    result = reconciled(gate)
    assert result["ok"] and result["executions"] == 0
    [unexecuted] = result["consumed_without_execution"]
    assert (unexecuted["jti"], unexecuted["action"], unexecuted["executor"]) == (jti, "payments.transfer", EXECUTOR)


# --- the matching itself ---------------------------------------------------------------------------------


def grant(jti: str, digest: str = "d", executor: str = "a") -> ConsumedGrant:
    return ConsumedGrant(0, jti, executor, digest, None, "")


def test_a_less_specific_execution_yields_a_grant_to_a_more_specific_one() -> None:
    grants = [grant("g-a", executor="a"), grant("g-b", executor="b")]
    runs = [Execution(1, "d"), Execution(2, "d", executor="a")]  # line 1 could take g-a; it must take g-b
    result = reconcile(grants, runs)
    assert result.ok and {(e.line, g.jti) for e, g in result.matched} == {(1, "g-b"), (2, "g-a")}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xy"), st.sampled_from("ab")), max_size=5),
       st.lists(st.tuples(st.sampled_from("xy"), st.sampled_from(["a", "b", None]),
                          st.sampled_from([None, "g0", "g1", "g9"])), max_size=5))
def test_the_matching_accounts_for_as_many_executions_as_any_assignment_could(
        grant_specs: list[tuple[str, str]], run_specs: list[tuple[str, str | None, str | None]]) -> None:
    grants = [grant(f"g{n}", digest, executor) for n, (digest, executor) in enumerate(grant_specs)]
    runs = [Execution(n + 1, digest, executor=executor, jti=jti) for n, (digest, executor, jti) in enumerate(run_specs)]
    result = reconcile(grants, runs)

    def fits(g: ConsumedGrant, e: Execution) -> bool:
        return g.digest == e.digest and e.executor in (None, g.executor) and e.jti in (None, g.jti)

    best = 0
    for chosen in itertools.product([None, *range(len(grants))], repeat=len(runs)):
        used = [c for c in chosen if c is not None]
        if len(used) == len(set(used)) and all(c is None or fits(grants[c], runs[n]) for n, c in enumerate(chosen)):
            best = max(best, len(used))
    assert len(result.matched) == best
    assert all(fits(g, e) for e, g in result.matched)
    assert len({g.jti for _, g in result.matched}) == len(result.matched)  # a grant accounts for one execution
    assert len(result.matched) + len(result.unmatched) == len(runs)


@pytest.mark.parametrize(("line", "problem"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "a line must be a JSON object"),
    (b'{"action": "payments.transfer"}', "`resource`: Field required"),
    (b'{"digest": "ABC"}', "`digest` must be 64 lower-case hex digits"),
    (b'{"jti": "grt_1"}', "a line needs `action` and `resource`"),
    (b'{"action": "a", "resource": "r", "param": {}}', "unknown key(s) `param`"),
    (b'{"action": "a", "resource": "r", "executor": 7}', "`executor` must be a non-empty string"),
    (b'{"action": "a", "resource": "r", "params": {}, "digest": "' + b"0" * 64 + b'"}', "`digest` is not the digest"),
    (b'{"action": "a", "resource": "r", "params": {"n": 1, "n": 2}}', "duplicate key `n`"),
])
def test_every_malformed_line_is_named(line: bytes, problem: str) -> None:
    good = json.dumps({**spec(100), "x-source": "ledger-42"}).encode()
    with pytest.raises(RequestError) as refused:
        parse_executions(good + b"\n" + line + b"\n\n" + line + b"\n")
    assert refused.value.code in ("input.invalid",)
    assert [p["line"] for p in refused.value.detail["problems"]] == [2, 4]
    assert all(problem in p["message"] for p in refused.value.detail["problems"]), refused.value.detail


# --- the command --------------------------------------------------------------------------------------------


SMALL = {"principal": payment(250)["principal"], **spec(250), "channel": "api"}


@pytest.fixture
def consumed(cli: Run, home: Path, tmp_path: Path) -> dict[str, Any]:
    """A home where one small payment was submitted and its grant consumed."""
    (tmp_path / "request.json").write_text(json.dumps(SMALL))
    (tmp_path / "action.json").write_text(json.dumps(spec(250)))
    grant = cli("submit", "--home", home, tmp_path / "request.json").ok()["grant"]
    return cli("consume", "--home", home, "--grant", grant, "--executor", EXECUTOR, tmp_path / "action.json").ok()


def test_the_command_exits_0_when_every_execution_has_its_grant_and_1_when_not(
        interlock: Run, home: Path, consumed: dict[str, Any], tmp_path: Path) -> None:
    once = tmp_path / "once.jsonl"
    once.write_bytes(lines({**spec(250), "executor": EXECUTOR, "id": "tx-1"}))
    body = interlock("audit", "reconcile", "--home", home, "--executions", once).ok()
    assert (body["ok"], body["matched"], body["log"]["ok"]) == (True, 1, True)
    assert body["matches"][0]["jti"] == consumed["jti"]
    twice = tmp_path / "twice.jsonl"
    twice.write_bytes(lines(spec(250), {**spec(250), "id": "tx-2"}, spec(251)))
    done = interlock("audit", "reconcile", "--home", home, "--executions", twice)
    assert done.code == 1 and done.stderr == "", done
    assert [(u["line"], u.get("id")) for u in done.json()["unmatched"]] == [(2, "tx-2"), (3, None)]
    piped = interlock("audit", "reconcile", "--home", home, "--executions", "-", input=twice.read_bytes())
    assert piped.code == 1 and piped.json()["unmatched"] == done.json()["unmatched"]


def test_an_export_reconciles_offline_and_a_tampered_one_fails(
        cli: Run, home: Path, consumed: dict[str, Any], tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    cli("audit", "export", "--home", home, "--out", export).ok()
    key = cli("audit", "public-key", "--home", home).ok()["public_key"]
    executions = tmp_path / "executions.jsonl"
    executions.write_bytes(lines(spec(250)))
    body = cli("audit", "reconcile", "--export", export, "--public-key", key, "--executions", executions).ok()
    assert (body["ok"], body["matched"], body["log"]["ok"], body["log"]["signed"]) == (True, 1, True, 2)
    # An entry claiming a second consumption of the same action, slipped into the export, is not trusted.
    document = json.loads(export.read_text())
    forged = json.loads(document["entries"][-1])
    forged.update(index=len(document["entries"]), data={**forged["data"], "jti": "grt_forged"})
    document["entries"].append(json.dumps(forged, separators=(",", ":")))
    export.write_text(json.dumps(document))
    executions.write_bytes(lines(spec(250), spec(250)))
    done = cli("audit", "reconcile", "--export", export, "--public-key", key, "--executions", executions)
    assert done.code == 1, done
    body = done.json()
    assert (body["matched"], body["log"]["entries"], body["log"]["signed"]) == (1, 3, 2)
    assert [(u["line"], u["reason"]) for u in body["unmatched"]] == [
        (2, "the only grant that would account for it (entry 2) is not covered by a signed checkpoint")]
    # An edit inside the signed entries fails the log itself.
    document["entries"][1] = document["entries"][1].replace(EXECUTOR, "someone-else")
    export.write_text(json.dumps(document))
    done = cli("audit", "reconcile", "--export", export, "--public-key", key, "--executions", executions)
    assert done.code == 1 and done.json()["log"]["ok"] is False, done


def test_malformed_lines_are_all_reported_before_the_log_is_read(cli: Run, tmp_path: Path) -> None:
    executions = tmp_path / "executions.jsonl"
    executions.write_bytes(lines(spec(250)) + b"{oops\n" + lines({"action": "a"}))
    done = cli("audit", "reconcile", "--home", tmp_path / "no-such-home", "--executions", executions)
    error = done.expect_refused("input.invalid", 2)
    assert [p["line"] for p in error["detail"]["problems"]] == [2, 3]
    assert error["message"].startswith("2 malformed line(s) in the execution log: line 2: not JSON")
    assert not (tmp_path / "no-such-home").exists()


def test_usage_errors(cli: Run, tmp_path: Path) -> None:
    executions = tmp_path / "executions.jsonl"
    executions.write_bytes(lines(spec(250)))
    cli("audit", "reconcile", "--export", executions, "--executions", executions).expect_refused("input.usage", 2)
    cli("audit", "reconcile", "--executions", tmp_path / "missing.jsonl").expect_refused("input.unreadable", 2)
    cli("audit", "reconcile", "--home", tmp_path / "none", "--executions", executions).expect_refused(
        "store.unavailable", 4)
