"""Where (a2) and (d) spend their time beyond the floor: commit cost by pages, pages per commit, and CPU alone.

`python -m bench.breakdown` (not part of `make bench`). Each measurement interleaves its variants, so the
machine's noise lands on all of them alike:

- one `synchronous=FULL` WAL commit of 1, 3 and 10 pages, commit by commit in turn, in the bench directory;
- the WAL frames (pages) that one allowed submit and one consume write: the WAL is emptied before each
  (`wal_checkpoint(TRUNCATE)`) and its frames counted after;
- `Gate.submit` and `Gate.consume` with the store in the bench directory and on tmpfs (`/dev/shm`), where
  an fsync costs nothing: what is left there is CPU;
- the floor (b) as a2 runs it: its four primitives timed alone (as `make bench` times them), the same four
  called in sequence, and in sequence with the one-row commit replaced by the rows an allowed submit must
  commit (its request, grant and audit entry, copied from a real submit into a store with the real
  schema), next to a2 itself. No Interlock code runs in the last two, so they bound what any change to it
  could reach.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import ACTION_BYTES, EXECUTOR, REQUEST_BYTES
from bench.floor import (
    FLOOR_KEYS,
    allowed_submit_rows,
    canonical_digest_subject,
    cel_subject,
    signature_subject,
    sqlite_commit_subject,
)
from bench.interlock_paths import open_gate
from bench.measure import timed_block
from interlock.gate import Gate

TMPFS = Path("/dev/shm")
PAGES = (1, 3, 10)


def _frames_after(db: sqlite3.Connection, write: Callable[[], object]) -> int:
    """WAL frames written by `write`, the WAL emptied first (nothing else may be writing or reading)."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    write()
    return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def commit_cost_by_pages(directory: Path, commits: int) -> dict[int, tuple[int, float]]:
    """Pages -> (WAL frames one commit writes, median COMMIT ns): a 900-byte row into each of `pages` tables."""
    db = sqlite3.connect(directory / "pages.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    for table in range(max(PAGES)):
        db.execute(f"CREATE TABLE t{table} (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    times: dict[int, list[int]] = {pages: [] for pages in PAGES}

    def commit(pages: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        for table in range(pages):
            db.execute(f"INSERT INTO t{table} (body) VALUES (?)", (b"x" * 900,))
        started = time.perf_counter_ns()
        db.execute("COMMIT")
        times[pages].append(time.perf_counter_ns() - started)

    frames = {pages: _frames_after(db, lambda p=pages: commit(p)) for pages in PAGES}
    for pages in PAGES:
        times[pages].clear()
    for _ in range(commits):
        for pages in PAGES:
            commit(pages)
    db.close()
    return {pages: (frames[pages], statistics.median(times[pages])) for pages in PAGES}


def frames_per_operation(gate: Gate, path: Path, samples: int) -> dict[str, float]:
    """Median WAL frames one allowed submit, and one consume, commit."""
    db = sqlite3.connect(path, isolation_level=None)
    submits = [_frames_after(db, lambda: gate.submit(REQUEST_BYTES)) for _ in range(samples)]
    grants = [gate.submit(REQUEST_BYTES).grant or "" for _ in range(samples)]
    consumes = [_frames_after(db, lambda g=grant: gate.consume(g, EXECUTOR, ACTION_BYTES))
                for grant in grants]
    db.close()
    return {"submit": statistics.median(submits), "consume": statistics.median(consumes)}


def gate_times(gates: dict[str, Gate], rounds: int, calls: int) -> dict[str, dict[str, float]]:
    """Median ns of `Gate.submit` and `Gate.consume` per store location, in interleaved blocks."""
    samples: dict[str, dict[str, list[int]]] = {where: {"submit": [], "consume": []} for where in gates}
    for _ in range(rounds):
        for where, gate in gates.items():
            samples[where]["submit"] += timed_block(lambda g=gate: g.submit(REQUEST_BYTES), calls)
            grants = [gate.submit(REQUEST_BYTES).grant or "" for _ in range(calls)]
            samples[where]["consume"] += timed_block(
                lambda g=gate, left=grants: g.consume(left.pop(), EXECUTOR, ACTION_BYTES), calls)
    return {where: {op: statistics.median(values) for op, values in ops.items()} for where, ops in samples.items()}


def floor_as_a2_runs_it(directory: Path, gate: Gate, rounds: int, calls: int) -> dict[str, float]:
    """Median ns of each floor primitive alone, of the four in sequence, of the three with a2's rows, and of a2."""
    grant = gate.submit(REQUEST_BYTES).grant or ""
    cel, jcs, ed25519 = cel_subject().fn, canonical_digest_subject().fn, signature_subject(grant).fn
    (directory / "floor").mkdir()
    (directory / "rows").mkdir()
    one_row = sqlite_commit_subject(directory / "floor").fn
    a2_rows = allowed_submit_rows(directory / "rows")

    def in_sequence() -> None:
        cel(), jcs(), ed25519(), one_row()

    def with_a2_rows() -> None:
        cel(), jcs(), ed25519(), a2_rows()

    subjects = {"b.cel": cel, "b.jcs": jcs, "b.ed25519": ed25519, "b.sqlite": one_row, "a2 rows": a2_rows,
                "floor in sequence": in_sequence, "floor with a2 rows": with_a2_rows,
                "a2": lambda: gate.submit(REQUEST_BYTES)}
    samples: dict[str, list[int]] = {key: [] for key in subjects}
    for fn in subjects.values():
        timed_block(fn, calls)  # warm-up
    for _ in range(rounds):
        for key, fn in subjects.items():
            samples[key] += timed_block(fn, calls)
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of gate calls (default 20)")
    parser.add_argument("--calls", type=int, default=50, help="calls per block (default 50)")
    parser.add_argument("--commits", type=int, default=1000, help="commits per page count (default 1000)")
    args = parser.parse_args()
    console = Console(width=140)
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="interlock-breakdown-", dir=os.environ.get("INTERLOCK_BENCH_DIR"))))
        costs = commit_cost_by_pages(directory, args.commits)
        table = Table(title=f"one synchronous=FULL WAL commit, by pages written ({directory})")
        for column in ("pages", "WAL frames", "COMMIT median"):
            table.add_column(column, justify="right")
        for pages, (frames, median) in costs.items():
            table.add_row(str(pages), str(frames), f"{median / 1e3:.0f} µs")
        console.print(table)

        (directory / "store").mkdir()
        gates = {"bench dir": open_gate(directory / "store")}
        if TMPFS.is_dir():
            memory = stack.enter_context(tempfile.TemporaryDirectory(prefix="interlock-breakdown-", dir=TMPFS))
            gates["tmpfs (no fsync cost)"] = open_gate(Path(memory))
        for gate in gates.values():
            stack.callback(gate.store.close)
        store_file = directory / "store" / "interlock.db"
        fresh = frames_per_operation(gates["bench dir"], store_file, 40)
        for gate in gates.values():  # warm up, and give each store some history
            for _ in range(200):
                gate.consume(gate.submit(REQUEST_BYTES).grant or "", EXECUTOR, ACTION_BYTES)
        times = gate_times(gates, args.rounds, args.calls)
        table = Table(title=f"Gate calls, medians of {args.rounds} interleaved rounds of {args.calls}")
        for column in ("store", "submit", "consume"):
            table.add_column(column, justify="right")
        for where, ops in times.items():
            table.add_row(where, f"{ops['submit'] / 1e3:.0f} µs", f"{ops['consume'] / 1e3:.0f} µs")
        console.print(table)
        grown = frames_per_operation(gates["bench dir"], store_file, 40)
        requests = _count_requests(store_file)
        console.print(f"WAL frames per commit (median of 40): allowed submit {fresh['submit']:g} on a fresh store,"
                      f" {grown['submit']:g} once it holds {requests:,} requests; consume {fresh['consume']:g} /"
                      f" {grown['consume']:g}")
        console.print(_floor_table(floor_as_a2_runs_it(directory, gates["bench dir"], args.rounds, args.calls)))
    return 0


def _floor_table(medians: dict[str, float]) -> Table:
    floor = sum(medians[key] for key in FLOOR_KEYS)
    table = Table(title="the floor (b) as a2 runs it, in interleaved rounds (bench dir)")
    for column in ("subject", "median", "× floor"):
        table.add_column(column, justify="right")
    for key, median in medians.items():
        table.add_row(key, f"{median / 1e3:.1f} µs", f"{median / floor:.2f}")
    table.add_row("floor (b): the four alone, summed", f"{floor / 1e3:.1f} µs", "1.00")
    return table


def _count_requests(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])


if __name__ == "__main__":
    raise SystemExit(main())
