"""`GET /metrics`: the gate's decisions, approvals, consumes, refusals and latencies in Prometheus text format.

Counting happens in one place, and not in the routes: the Gate reports each submit, approve and consume
to an optional `observer` (a plain callback taking an `Observation`; gate.py knows nothing of Prometheus),
and `Metrics.observe` turns observations into this app's series. Observing the gate rather than wrapping
the routes' calls means that every way into the gate — the JSON API, the web inbox, anything added later —
is counted the same way without a route having to remember to, and refusals are counted by the code the
gate raised. The registry is per app (never prometheus_client's global one), so several apps and tests
do not collide.

Scraping needs an admin credential (`Authorization: Bearer ilk_...`, which Prometheus sends with
`authorization: {credentials: ...}`), unless the app was created with `metrics_public=True`, which
`interlock serve` allows only on a loopback address.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from interlock.observe import Observation
from interlock.server.auth import _bearer_scheme, caller
from interlock.server.schemas import refusals

# From 0.5 ms (an allow decided in-process) to 2.5 s (a commit stuck behind a busy store).
# The classic text format every Prometheus version reads; the names here need none of 1.0.0's escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """One app's Prometheus series, fed by the gate's observer."""

    def __init__(self, *, public: bool = False) -> None:
        self.public = public
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("interlock_decisions", "Requests decided at submit, by outcome.",
                                 ["outcome"], registry=self.registry)
        self.approvals = Counter("interlock_approvals", "Approver verdicts accepted, by verdict.",
                                 ["verdict"], registry=self.registry)
        self.rubber_stamps = Counter("interlock_rubber_stamp_approvals",
                                     "Approvals given sooner than the policy's review time (min_review).",
                                     registry=self.registry)
        self.consumes = Counter("interlock_consumes", "Grant consumes, by result (consumed or refused).",
                                ["result"], registry=self.registry)
        self.refusals = Counter("interlock_refusals", "Refusals and deny decisions, by operation and reason code.",
                                ["operation", "code"], registry=self.registry)
        self.latency = Histogram("interlock_operation_duration_seconds", "Gate operation latency, by operation.",
                                 ["operation"], buckets=LATENCY_BUCKETS, registry=self.registry)
        for operation in ("submit", "approve", "consume"):
            self.latency.labels(operation)  # present from the first scrape, at zero
        for result in ("consumed", "refused"):
            self.consumes.labels(result)

    def observe(self, seen: Observation) -> None:
        """The Gate's observer."""
        self.latency.labels(seen.operation).observe(seen.seconds)
        for code in seen.codes:
            self.refusals.labels(seen.operation, code).inc()
        if seen.operation == "submit" and seen.outcome != "refused":
            self.decisions.labels(seen.outcome).inc()
        elif seen.operation == "approve" and seen.outcome != "refused":
            self.approvals.labels(seen.outcome).inc()
            if "rubber_stamp" in seen.flags:
                self.rubber_stamps.inc()
        elif seen.operation == "consume":
            self.consumes.labels("refused" if seen.outcome == "refused" else "consumed").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _scraper(request: Request, _: object = Depends(_bearer_scheme)) -> None:
    if not metrics_of(request).public:
        await caller("admin")(request)


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, dependencies=[Depends(_scraper)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"},
                       **refusals(401, 403, 503)})
async def metrics(request: Request) -> Response:
    """Prometheus metrics; needs an admin credential unless the server was started with public metrics."""
    return Response(metrics_of(request).exposition(), media_type=CONTENT_TYPE)
