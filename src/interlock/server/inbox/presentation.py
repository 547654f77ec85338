"""What an approver sees of a request: look-alike characters spelled out, the digest fingerprint, canonical params."""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from interlock.core import bursts
from interlock.core.canonical import canonical_json
from interlock.results import RequestReview


@dataclass(frozen=True)
class Identifier:
    """A value a requester chose, with every non-ASCII character named so a look-alike cannot hide."""

    text: str
    code_points: tuple[str, ...]


def identifier(text: str) -> Identifier:
    return Identifier(text, tuple(
        f"{char} U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"
        for char in dict.fromkeys(text) if not char.isascii() or not char.isprintable()
    ))


def fingerprint(digest: str) -> str:
    """The first 16 hex characters of the action digest in groups of 4, short enough to read aloud."""
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _strings(value[key], f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def detail(review: RequestReview) -> dict[str, Any]:
    """The template context of a request's page; every string in it is escaped by the template."""
    request, state = review.request, review.state
    return {
        "review": review,
        "state": state,
        "requester": identifier(request.principal.id),
        "requester_kind": request.principal.kind,
        "chain": [(identifier(p.id), p.kind) for p in request.on_behalf_of],
        "resource": identifier(request.resource),
        "params_json": canonical_json(request.params).decode(),
        "lookalikes": [(path, found) for path, text in _strings(request.params, "params")
                       if (found := identifier(text)).code_points],
        "fingerprint": fingerprint(state.digest),
        "progress": [{**p, "approved_by": list(p["approved_by"])} for p in state.progress],
    }


def card(review: RequestReview) -> dict[str, Any]:
    """One line of the inbox."""
    state = review.state
    return {
        "review": review,
        "requester": identifier(review.request.principal.id),
        "resource": identifier(review.request.resource),
        "fingerprint": fingerprint(state.digest),
        "progress": ", ".join(f"{len(p['approved_by'])} of {p['quorum']}" for p in state.progress),
    }


def open_reviews(reviews: list[Any], now: datetime.datetime) -> list[dict[str, Any]]:
    """The inbox's break-glass reviews still open: who broke the glass, why, by when, and whether it is overdue."""
    return [{
        "request_id": review.request_id,
        "used_by": identifier(review.used_by),
        "entry_id": review.entry_id,
        "justification": review.justification,
        "due_at": review.due_at,
        "overdue": now >= review.due_at,
        "signed_by": [identifier(s.reviewer_id) for s in review.signoffs],
    } for review in reviews]


def duration(span: datetime.timedelta) -> str:
    """A time span as a person reads it: `45 s`, `4 min 5 s`, `2 h 10 min`."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def group_cards(waiting: list[RequestReview]) -> list[dict[str, Any]]:
    """The inbox's cards: near-identical requests (approval bombing) collapsed into one card each."""
    cards = []
    for burst in bursts.group(waiting, lambda review: review.request, lambda review: review.submitted_at):
        request = burst.members[0].request
        cards.append({
            "burst": burst,
            "action": burst.key.action,
            "requester": identifier(burst.key.requester),
            "requester_kind": request.principal.kind,
            "chain": [identifier(who) for who in burst.key.chain],
            "resource": identifier(burst.key.resource),
            "span": duration(burst.span),
            "window": duration(bursts.BURST_WINDOW),
            "requests": [card(review) for review in burst.members],
        })
    return cards
