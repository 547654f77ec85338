"""Approval bombing: near-identical pending requests grouped into bursts, so an approver sees one card, not fifty.

Requests are near-identical when the same requester, acting for the same delegation chain, asks for the same
action on the same resource; their params may differ. Grouping only shapes what an approver is shown: every
request in a burst keeps its own binding code and needs its own decision.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from interlock.core.action import ActionRequest

T = TypeVar("T")

# A burst is suspect when at least BURST_SIZE of its requests were submitted within BURST_WINDOW.
BURST_SIZE = 3
BURST_WINDOW = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class LookAlike:
    """What near-identical requests share: who asks, for whom, to do what, to what."""

    requester: str
    chain: tuple[str, ...]
    action: str
    resource: str


def look_alike(request: ActionRequest) -> LookAlike:
    return LookAlike(request.principal.id, request.delegator_ids, request.action, request.resource)


@dataclass(frozen=True)
class Burst(Generic[T]):
    """Near-identical requests, oldest first, and whether they came fast enough to look like approval bombing."""

    key: LookAlike
    members: tuple[T, ...]
    first_at: datetime.datetime
    last_at: datetime.datetime
    peak: int  # the most members submitted within any one window
    suspect: bool

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def span(self) -> datetime.timedelta:
        return self.last_at - self.first_at


def peak(times: Iterable[datetime.datetime], window: datetime.timedelta) -> int:
    """The most of `times` that fall within one `window` (both ends included)."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def group(
    items: Iterable[T],
    request_of: Callable[[T], ActionRequest],
    submitted_at: Callable[[T], datetime.datetime],
    *,
    size: int = BURST_SIZE,
    window: datetime.timedelta = BURST_WINDOW,
) -> list[Burst[T]]:
    """`items` grouped by look-alike key, groups in order of their oldest member, members oldest first."""
    if size < 2 or window < datetime.timedelta(0):
        raise ValueError("a burst needs a size of at least 2 and a window that is not negative")
    grouped: dict[LookAlike, list[T]] = {}
    for item in items:
        grouped.setdefault(look_alike(request_of(item)), []).append(item)
    bursts = []
    for key, members in grouped.items():
        members.sort(key=submitted_at)
        times = [submitted_at(m) for m in members]
        most = peak(times, window)
        bursts.append(Burst(key, tuple(members), times[0], times[-1], most, most >= size))
    bursts.sort(key=lambda b: b.first_at)
    return bursts
