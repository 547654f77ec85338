"""Action patterns as sets of action names: whether two patterns share an action, whether one covers another.

A policy names actions with `fnmatch` patterns (`payments.*`, `data.share*`, `config.apply`). An action name is
dot-separated segments of `[A-Za-z0-9_-]` (`action.ACTION_NAME`), a finite alphabet, so each pattern is a
finite automaton over it and the questions below are answered exactly, by walking the product of the automata:
no sampling, no guessing. A walk that grows past `MAX_STATES` answers "not proven" (None), which every caller
treats as the answer that reports nothing.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Sequence
from functools import lru_cache

from interlock.core.action import ACTION_NAME

ALPHABET = frozenset(string.ascii_letters + string.digits + "_-.")
MAX_STATES = 20_000
_STAR = None  # the token of `*`; any other token is the set of characters it matches
Token = frozenset[str] | None
_State = tuple[frozenset[int], ...]


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@lru_cache(maxsize=4096)
def _tokens(pattern: str) -> tuple[Token, ...]:
    """The pattern as `fnmatch` reads it: `*`, or the set of action characters one position matches."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
        elif ch == "?":
            tokens.append(ALPHABET)
        elif ch == "[":
            # The bracket's extent exactly as fnmatch.translate finds it; its members by asking fnmatch itself.
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                tokens.append(frozenset("[") & ALPHABET)
            else:
                bracket = pattern[i - 1 : j + 1]
                tokens.append(frozenset(c for c in ALPHABET if fnmatch.fnmatchcase(c, bracket)))
                i = j + 1
        else:
            tokens.append(frozenset(ch) & ALPHABET)
    return tuple(tokens)


def _closure(tokens: tuple[Token, ...], positions: frozenset[int]) -> frozenset[int]:
    found = set(positions)
    for i in sorted(positions):
        while i < len(tokens) and tokens[i] is _STAR:
            i += 1
            found.add(i)
    return frozenset(found)


def _step(tokens: tuple[Token, ...], positions: frozenset[int], ch: str) -> frozenset[int]:
    after: set[int] = set()
    for i in positions:
        if i < len(tokens):
            token = tokens[i]
            if token is _STAR:
                after.add(i)
            elif ch in token:
                after.add(i + 1)
    return _closure(tokens, frozenset(after))


# Action names (`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`): 0 = a segment must start, 1 = inside a segment.
_ACTION_NAME = re.compile(ACTION_NAME)
_SEGMENT = ALPHABET - {"."}


def _name_step(state: int, ch: str) -> int | None:
    if ch == ".":
        return 0 if state == 1 else None
    return 1


def _characters(tokens: Sequence[tuple[Token, ...]]) -> list[str]:
    """One character per class that every token treats alike: the ones named, plus one that none names."""
    named: set[str] = {"."}
    for pattern in tokens:
        for token in pattern:
            if token is not _STAR and len(token) < len(ALPHABET):
                named |= token
    other = sorted(_SEGMENT - named, key=lambda c: (not c.islower(), c))  # witnesses read `payments.a`
    return sorted(named & ALPHABET) + other[:1]


def find_action(inside: Sequence[str], outside: Sequence[str] = ()) -> str | bool | None:
    """An action name matched by every pattern of `inside` and by none of `outside`.

    Returns the name (a witness), False when there is none, or None when the walk was too large to tell.
    """
    return _find_action(tuple(inside), tuple(outside))


@lru_cache(maxsize=16384)
def _find_action(inside: tuple[str, ...], outside: tuple[str, ...]) -> str | bool | None:
    literal = next((p for p in inside if not is_glob(p)), None)
    if literal is not None:  # the common case: a rule names one action, the only candidate
        found = (_ACTION_NAME.match(literal) is not None
                 and all(fnmatch.fnmatchcase(literal, p) for p in inside)
                 and not any(fnmatch.fnmatchcase(literal, p) for p in outside))
        return literal if found else False
    inside_tokens = [_tokens(p) for p in inside]
    outside_tokens = [_tokens(p) for p in outside]
    every = inside_tokens + outside_tokens
    characters = _characters(every)
    start: _State = tuple(_closure(t, frozenset({0})) for t in every)
    seen: dict[tuple[int, _State], str] = {(0, start): ""}
    frontier: list[tuple[int, _State]] = [(0, start)]
    while frontier:
        next_frontier: list[tuple[int, _State]] = []
        for name_state, state in frontier:
            name = seen[(name_state, state)]
            if name_state == 1 and _accepts(every, state, len(inside_tokens)):
                return name
            for ch in characters:
                moved = _name_step(name_state, ch)
                if moved is None:
                    continue
                stepped = tuple(_step(t, s, ch) for t, s in zip(every, state, strict=True))
                # A pattern that must match and has no state left can never match again: prune.
                if any(not s for s in stepped[: len(inside_tokens)]):
                    continue
                key = (moved, stepped)
                if key not in seen:
                    if len(seen) >= MAX_STATES:
                        return None
                    seen[key] = name + ch
                    next_frontier.append(key)
        frontier = next_frontier
    return False


def _accepts(every: list[tuple[Token, ...]], state: _State, inside: int) -> bool:
    for n, (tokens, positions) in enumerate(zip(every, state, strict=True)):
        accepted = len(tokens) in positions
        if accepted != (n < inside):
            return False
    return True


@lru_cache(maxsize=8192)
def overlaps(first: str, second: str) -> bool:
    """Some action name matches both patterns (proven; an undecided walk answers False)."""
    return isinstance(find_action((first, second)), str)


@lru_cache(maxsize=8192)
def matches_any(pattern: str) -> bool:
    """Some action name matches the pattern (`payments..x` or `a.` match none)."""
    return isinstance(find_action((pattern,)), str)


def covers(outer: Sequence[str], inner: Sequence[str]) -> bool:
    """Every action name matched by all of `inner` is matched by one of `outer` (proven; undecided is False)."""
    return find_action(tuple(inner), tuple(outer)) is False
