"""Targets, the printed table and the JSON results, from the pooled and per-round samples."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.floor import FLOOR_KEYS
from bench.measure import Subject, summarize

PEER_KEYS = ("c.cedarpy", "c.casbin", "c.agt", "c.agt-mesh")
SCALING_KEYS = ("e.10", "e.1000", "e.10000")


@dataclass(frozen=True)
class Target:
    """A performance target of issue 2: the measured value, its limit, and how many rounds met it."""

    id: str
    description: str
    measured: float
    limit: float
    unit: str
    passed: bool
    rounds_passing: int
    rounds: int


def _per_round(subjects: dict[str, Subject], fn: Callable[[Callable[[str], float]], bool]) -> tuple[int, int]:
    rounds = min(len(s.round_medians) for s in subjects.values())
    passing = sum(fn(lambda key, r=r: subjects[key].round_medians[r]) for r in range(rounds))
    return passing, rounds


def floor_median(subjects: dict[str, Subject]) -> float:
    return sum(summarize(subjects[k].samples).median for k in FLOOR_KEYS)


def targets(subjects: dict[str, Subject]) -> list[Target]:
    med = {key: summarize(s.samples).median for key, s in subjects.items()}
    peers = [k for k in PEER_KEYS if k in med]
    out = []
    fastest_peer = min(med[k] for k in peers)
    out.append(Target(
        "c", "(a1) faster than every peer in (c): fastest peer / (a1)", fastest_peer / med["a1"], 1.0, "×",
        fastest_peer > med["a1"],
        *_per_round(subjects, lambda m: all(m(k) > m("a1") for k in peers)),
    ))
    ratio = med["a2"] / floor_median(subjects)
    out.append(Target(
        "a2/b", "(a2) ≤ 2× (b): (a2) / sum of floor medians", ratio, 2.0, "×", ratio <= 2.0,
        *_per_round(subjects, lambda m: m("a2") <= 2.0 * sum(m(k) for k in FLOOR_KEYS)),
    ))
    out.append(Target(
        "d", "(d) grant round trip under 1 ms median", med["d"] / 1e6, 1.0, "ms", med["d"] < 1e6,
        *_per_round(subjects, lambda m: m("d") < 1e6),
    ))
    ratio = med["e.10000"] / med["e.10"]
    out.append(Target(
        "e", "(e) 10,000 other rules ≤ 1.5× 10 other rules", ratio, 1.5, "×", ratio <= 1.5,
        *_per_round(subjects, lambda m: m("e.10000") <= 1.5 * m("e.10")),
    ))
    return out


def _time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} µs"


def _ratio_note(key: str, med: dict[str, float], floor: float) -> str:
    if key == "a1":
        return "base for (c), (e)"
    if key == "a2":
        return f"{med['a2'] / floor:.2f}× floor (b)"
    if key in FLOOR_KEYS:
        return f"{100 * med[key] / floor:.1f}% of floor"
    if key == "b.as_run":
        return f"{med[key] / floor:.2f}× floor; a2 {med['a2'] / med[key]:.2f}× it"
    if key in PEER_KEYS:
        return f"{med[key] / med['a1']:.2f}× (a1)"
    if key == "d.consume":
        return f"{100 * med[key] / med['d']:.0f}% of round trip"
    if key in SCALING_KEYS:
        return f"{med[key] / med['e.10']:.2f}× e.10"
    return ""


def print_report(console: Console, subjects: dict[str, Subject], compile_seconds: dict[int, float],
                 notes: list[str]) -> list[Target]:
    """Print the results table, the targets (PASS/FAIL) and the notes; return the targets."""
    med = {key: summarize(s.samples).median for key, s in subjects.items()}
    floor = floor_median(subjects)
    table = Table(title="Interlock benchmarks (one run; medians and p99 over all rounds)")
    for column, justify in (("row", "left"), ("subject", "left"), ("median", "right"), ("p99", "right"),
                            ("samples", "right"), ("ratio", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for key, subject in subjects.items():
        stats = summarize(subject.samples)
        table.add_row(key, subject.label, _time(stats.median), _time(stats.p99), f"{stats.samples:,}",
                      _ratio_note(key, med, floor))
        if key == FLOOR_KEYS[-1]:
            table.add_row("b", "floor: sum of the four medians", _time(floor), "", "", "", style="bold")
    console.print(table)
    console.print("compile time (load_policy on YAML): " + ", ".join(
        f"{n:,} other rules {s:.2f} s" for n, s in compile_seconds.items()))
    results = targets(subjects)
    for t in results:
        verdict = "[green]PASS[/]" if t.passed else "[red]FAIL[/]"
        console.print(f"{verdict} {t.description}: {t.measured:.2f} {t.unit} (limit {t.limit:g} {t.unit});"
                      f" met in {t.rounds_passing}/{t.rounds} rounds")
    for note in notes:
        console.print(f"[dim]note: {note}[/]")
    return results


def _stats_json(subject: Subject) -> dict[str, float]:
    stats = summarize(subject.samples)
    return {"median_ns": stats.median, "p99_ns": stats.p99, "mean_ns": stats.mean, "samples": stats.samples}


def results_json(subjects: dict[str, Subject], found: list[Target], compile_seconds: dict[int, float],
                 environment: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The machine-readable results (times in nanoseconds)."""
    return {
        "environment": environment,
        "subjects": {
            key: {"label": s.label, **_stats_json(s), "calls_per_round": s.calls_per_round,
                  "round_medians_ns": s.round_medians,
                  "round_median_spread": statistics.pstdev(s.round_medians) / statistics.fmean(s.round_medians)}
            for key, s in subjects.items()
        },
        "floor_median_ns": floor_median(subjects),
        "compile_seconds": {str(n): s for n, s in compile_seconds.items()},
        "targets": [asdict(t) for t in found],
        "notes": notes,
    }
