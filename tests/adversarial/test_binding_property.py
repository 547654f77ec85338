"""INVARIANT 2, as a property: a grant runs exactly the params it was issued for, and nothing else.

For an allowed seed transfer (with arbitrary extra params), any change anywhere in the params — a value
replaced at any depth, a key or list item added or removed — is refused at consume with
`grant.digest_mismatch`, and the grant stays consumable with the original params.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from conftest import SEED, FixedClock
from interlock.core.errors import InterlockError
from interlock.core.policy import load_policy
from interlock.core.strict_json import MAX_SAFE_INTEGER
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore

POLICY = load_policy((SEED / "policy.yaml").read_bytes())
KEYS = KeyRing.generate()
KNOWN_RECIPIENT = "DE89370400440532013000"
EXECUTOR = "payments-service"


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value the strict parser accepts (ints within ±2^53-1, finite floats, nesting well under 32)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
        max_leaves=12,
    )


any_text = st.text(max_size=12)
# The submitted request keeps U+0000 out: conditions refuse to judge it (the CEL engine truncates there),
# so such a request is never allowed. The changed params may contain anything.
submittable_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
any_value = json_values(any_text)
submittable_value = json_values(submittable_text)


def canonical(value: Any) -> bytes:
    return rfc8785.dumps(value)


def allowed_transfer(amount: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The seed's `small-known-transfers` case: a small payment to a known recipient, no delegators, over api."""
    return {
        "principal": {"id": "agent:finance-assistant", "kind": "agent",
                      "attributes": {"known_recipients": [KNOWN_RECIPIENT]}},
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {**extra, "amount": amount, "currency": "EUR", "recipient": KNOWN_RECIPIENT},
        "channel": "api",
    }


@st.composite
def changed(draw: st.DrawFn, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of `params` with one change at a random place in its tree."""
    result = copy.deepcopy(params)
    container: dict[str, Any] | list[Any] = result
    # Walk down while the current container holds containers and the draw says go deeper.
    while True:
        inner = [k for k, v in (container.items() if isinstance(container, dict) else enumerate(container))
                 if isinstance(v, (dict, list))]
        if not inner or not draw(st.booleans()):
            break
        container = container[draw(st.sampled_from(inner))]
    keys = list(container) if isinstance(container, dict) else list(range(len(container)))
    moves = ["add"] + (["replace", "remove"] if keys else [])
    move = draw(st.sampled_from(moves))
    if move == "add":
        value = draw(any_value)
        if isinstance(container, dict):
            container[draw(any_text.filter(lambda k: k not in container))] = value
        else:
            container.insert(draw(st.integers(0, len(container))), value)
    elif move == "remove":
        del container[draw(st.sampled_from(keys))]  # type: ignore[arg-type]
    else:
        key = draw(st.sampled_from(keys))
        old = container[key]  # type: ignore[index]
        # 1 and 1.0 are the same number in RFC 8785, so "changing" one into the other is no change.
        container[key] = draw(any_value.filter(lambda v: canonical(v) != canonical(old)))  # type: ignore[index]
    return result


@st.composite
def transfer_and_change(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    names = submittable_text.filter(lambda k: k not in ("amount", "currency", "recipient"))
    extra = draw(st.dictionaries(names, submittable_value, max_size=3))
    request = allowed_transfer(draw(st.integers(min_value=1, max_value=1000)), extra)
    return request, draw(changed(request["params"]))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("binding")


_runs = itertools.count()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(item) for item in value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=transfer_and_change())
def test_any_change_of_params_is_refused_and_the_grant_survives(
    workdir: Path, case: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    request, params = case
    assert canonical(params) != canonical(request["params"])
    # A fresh gate per example: the seed rule has a daily limit, so earlier examples must not count.
    store = SqliteStore(workdir / f"interlock-{next(_runs)}.db")
    try:
        gate = Gate(store, POLICY, KEYS, clock=FixedClock())
        state = gate.submit(request)
        assert state.outcome == "allowed", state.explanation
        assert state.grant is not None
        original = {"action": request["action"], "resource": request["resource"], "params": request["params"]}

        with pytest.raises(InterlockError) as caught:
            gate.consume(state.grant, EXECUTOR, {**original, "params": params})
        # A change that is itself bad input (a U+0000 anywhere) is refused at the door instead.
        expected = "input.invalid" if _has_nul(params) else "grant.digest_mismatch"
        assert caught.value.code == expected

        consumed = gate.consume(state.grant, EXECUTOR, original)
        assert consumed.digest == state.digest
        assert consumed.request_id == state.request_id
    finally:
        store.close()


def test_the_change_strategy_reaches_inside_nested_values() -> None:
    # Guard against a strategy that only ever touches the top level: a change two levels down is drawable.
    params = {"amount": 5, "meta": {"tags": ["a", "b"]}}

    def inside_tags(p: dict[str, Any]) -> bool:
        meta = p.get("meta")
        return p.get("amount") == 5 and isinstance(meta, dict) and list(meta) == ["tags"] and (
            isinstance(meta["tags"], list) and meta["tags"] != ["a", "b"]
        )

    found = find(changed(params), inside_tags, settings=settings(max_examples=2000, database=None))
    assert found["meta"]["tags"] != ["a", "b"]
