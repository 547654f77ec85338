"""Issue 4's audit-log rows: append rate, checkpoint cost and proof cost at 10^4, 10^5 and 10^6 entries.

For each size a real store is built in the bench's temp dir (SQLite, WAL, `synchronous=FULL`, the store the
gate uses; and, when `INTERLOCK_BENCH_POSTGRES` names a server, a PostgreSQL store in a schema of its own,
dropped afterwards). Its entries are the ones a gate writes: the audit events of one real `Gate.submit` →
`Gate.consume` round trip, replayed with a fresh request id each time, so leaves are as long as real ones.

Building the log uses the store's own public append path, `Store.append_audit(events)`, with
`SETUP_CHUNK` events per call: each call is one transaction that seals and inserts its entries exactly
as any other append does (no rows are written behind the store's back). Afterwards the whole log is checked
with `Ledger.verify()` — every leaf rehashed, every entry's index, the tree against the signed checkpoint.

Measured per size (times with `time.perf_counter_ns`, garbage collector off inside proof blocks):

- append rate through the store: `append_audit([one event])` committed one by one (an fsync each on
  SQLite), and `append_audit(BATCH events)` in one transaction;
- `Ledger.checkpoint()`: the first one over all n entries (it completes every Merkle node, about n of
  them above the leaves — SQLite in write transactions of a bounded number of leaves, then the signing one;
  an append issued meanwhile from another thread is timed, to show how long writers wait), then
  incremental ones after +1 and +1,000 entries;
- `Ledger.inclusion_proof(i, n)` for random leaves (store reads) and `merkle.verify_inclusion`, against the
  first checkpoint (n entries); the sum of the two per proof is the issue's target (under 1 ms at 10^6);
- `Ledger.consistency_proof(m, n)` from random earlier sizes m, and `merkle.verify_consistency`;
- proof sizes in hashes, next to log2(n): both must grow as log n;
- one inclusion proof's store reads three ways, in turn on the same leaves: node by node through a plain
  `NodeReader` (how proofs read before the stores' `BatchReader`), all nodes in one query inside a snapshot
  transaction (`Store.read_tree`, how proofs read before `Store.signed_nodes`), and all nodes with the
  checkpoint in one statement (`Store.signed_nodes`, what `Ledger` proofs use: one round trip on PostgreSQL);
- `Store.checkpoints()` with one and with all checkpoints stored (`audit verify` reads them all; a proof
  reads only the one it is proved against), so its cost per stored checkpoint is printed.

Proof blocks interleave the sizes round by round (rotating their order), so machine noise lands on all
sizes alike and the growth ratios come from the same rounds.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.common import ACTION_BYTES, EXECUTOR, REQUEST_BYTES, require
from bench.measure import p99
from interlock.audit import merkle
from interlock.keys import KeyRing
from interlock.ledger import Ledger
from interlock.store.base import AuditEvent, Store

SIZES = (10**4, 10**5, 10**6)
POSTGRES_ENV = "INTERLOCK_BENCH_POSTGRES"
TARGET_SIZE = 10**6
TARGET_MS = 1.0  # inclusion proof + verification, median, at TARGET_SIZE entries
SETUP_CHUNK = 20_000  # events per `append_audit` call while building a log (one transaction each)
SINGLE_APPENDS = 200  # `append_audit([event])`, each its own commit
BATCH = 1_000  # events in one `append_audit` call
BATCHES = 5
INCREMENTS = ((1, 20), (1_000, 5))  # (entries appended, then a checkpoint timed) × repeats
ROUNDS = 10
PROOFS_PER_ROUND = 200  # inclusion proofs per size per round (and as many consistency proofs)
SAMPLE_POINTS = 2_000  # random leaves / earlier sizes drawn per size (fixed seed), cycled through
SEED = 4


# --- the entries -------------------------------------------------------------------------------


def gate_events(directory: Path) -> list[AuditEvent]:
    """The audit events of one real round trip (submit → consume) on a scratch gate, as templates."""
    from bench.interlock_paths import open_gate  # the gate only to record real events, not timed

    gate = open_gate(directory)
    try:
        grant = gate.submit(REQUEST_BYTES).grant
        require(bool(grant), "audit: the scratch gate did not issue a grant")
        gate.consume(grant or "", EXECUTOR, ACTION_BYTES)
        events = []
        for stored in gate.store.audit_entries():
            body = json.loads(stored.leaf)
            at = datetime.datetime.fromisoformat(body["at"].replace("Z", "+00:00"))
            events.append(AuditEvent(body["kind"], body["request_id"], body["data"], at))
    finally:
        gate.store.close()
    require(len(events) >= 2, f"audit: a round trip wrote {len(events)} audit entries")
    return events


class EventSource:
    """An endless stream of gate-shaped events: the templates in turn, with a new request id per round trip."""

    def __init__(self, templates: list[AuditEvent]) -> None:
        self._templates = templates
        self._count = 0

    def take(self, n: int) -> list[AuditEvent]:
        out = []
        for _ in range(n):
            trip, step = divmod(self._count, len(self._templates))
            template = self._templates[step]
            at = template.at + datetime.timedelta(microseconds=trip)
            out.append(AuditEvent(template.kind, f"req_bench{trip:026x}", template.data, at))
            self._count += 1
        return out

    @property
    def mean_leaf_bytes(self) -> float:
        from interlock.audit.log import AuditEntry
        from interlock.store.rows import rfc3339

        sizes = [len(AuditEntry(0, rfc3339(e.at), e.kind, e.request_id, e.data).leaf()) for e in self._templates]
        return statistics.fmean(sizes)


# --- stores ------------------------------------------------------------------------------------


def _clock() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Log:
    """One store holding one log under test, and its ledger."""

    kind: str  # "sqlite" | "postgresql"
    size: int
    store: Store
    ledger: Ledger
    close: Callable[[], None]
    signed: int = 0  # size of the newest checkpoint
    root: bytes = b""
    leaves: list[int] = field(default_factory=list)  # sample leaf indexes (< signed at the first checkpoint)
    olds: list[tuple[int, bytes]] = field(default_factory=list)  # sample earlier sizes and their roots


def _with_options(url: str, **settings: str) -> str:
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


@contextmanager
def _postgres_schema(url: str) -> Iterator[str]:
    """A URL whose connections work in a new schema of the bench's own, dropped afterwards."""
    import psycopg

    schema = f"ilk_bench_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_options(url, search_path=schema)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- results ------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """Everything measured on one log of `size` entries in one store."""

    kind: str
    size: int
    setup_s: float = 0.0
    verify_s: float = 0.0
    verify_ok: bool = False
    leaf_bytes: float = 0.0
    signed: int = 0  # the first checkpoint's size: the tree every proof is in
    first_checkpoint_s: float = 0.0
    blocked_append_ms: float = 0.0  # the longest an append issued during the first checkpoint waited
    blocked_append_errors: list[str] = field(default_factory=list)
    append_single_ns: list[int] = field(default_factory=list)
    append_batch_ns: list[int] = field(default_factory=list)
    checkpoint_ns: dict[int, list[int]] = field(default_factory=dict)  # entries appended → checkpoint times
    inclusion_ns: list[int] = field(default_factory=list)
    inclusion_verify_ns: list[int] = field(default_factory=list)
    inclusion_hashes: list[int] = field(default_factory=list)
    consistency_ns: list[int] = field(default_factory=list)
    consistency_verify_ns: list[int] = field(default_factory=list)
    consistency_hashes: list[int] = field(default_factory=list)
    round_medians_ns: list[float] = field(default_factory=list)  # inclusion proof + verification, per round
    read_per_node_ns: list[int] = field(default_factory=list)  # an inclusion proof's store reads, node by node
    read_one_query_ns: list[int] = field(default_factory=list)  # the same reads as one query (a BatchReader)
    read_one_statement_ns: list[int] = field(default_factory=list)  # the same with the checkpoint, one statement
    nodes_read: list[int] = field(default_factory=list)
    checkpoints_stored: int = 0
    checkpoints_read_ns: list[int] = field(default_factory=list)  # Store.checkpoints(), all of them
    checkpoints_read_one_ns: list[int] = field(default_factory=list)  # the same with only the first one stored

    @property
    def inclusion_total_ns(self) -> list[int]:
        return [a + b for a, b in zip(self.inclusion_ns, self.inclusion_verify_ns, strict=True)]

    @property
    def consistency_total_ns(self) -> list[int]:
        return [a + b for a, b in zip(self.consistency_ns, self.consistency_verify_ns, strict=True)]

    def to_json(self) -> dict[str, Any]:
        def stats(values: Sequence[int]) -> dict[str, float] | None:
            if not values:
                return None
            return {"median_ns": float(statistics.median(values)), "p99_ns": p99(list(values)),
                    "samples": len(values)}

        return {
            "store": self.kind, "size": self.size, "log2_size": math.log2(self.size), "setup_s": self.setup_s,
            "setup_entries_per_s": self.size / self.setup_s if self.setup_s else None,
            "mean_leaf_bytes": self.leaf_bytes, "verify_s": self.verify_s, "verify_ok": self.verify_ok,
            "proved_tree_size": self.signed, "first_checkpoint_s": self.first_checkpoint_s,
            "blocked_append_ms": self.blocked_append_ms,
            "blocked_append_errors": self.blocked_append_errors,
            "append_single": stats(self.append_single_ns), "append_batch": stats(self.append_batch_ns),
            "append_batch_size": BATCH,
            "checkpoint_after": {str(k): stats(v) for k, v in self.checkpoint_ns.items()},
            "inclusion_proof": stats(self.inclusion_ns), "inclusion_verify": stats(self.inclusion_verify_ns),
            "inclusion_total": stats(self.inclusion_total_ns),
            "inclusion_hashes": stats(self.inclusion_hashes),
            "inclusion_hashes_max": max(self.inclusion_hashes, default=0),
            "consistency_proof": stats(self.consistency_ns),
            "consistency_verify": stats(self.consistency_verify_ns),
            "consistency_total": stats(self.consistency_total_ns),
            "consistency_hashes": stats(self.consistency_hashes),
            "consistency_hashes_max": max(self.consistency_hashes, default=0),
            "round_medians_inclusion_total_ns": self.round_medians_ns,
            "inclusion_reads_per_node": stats(self.read_per_node_ns),
            "inclusion_reads_one_query": stats(self.read_one_query_ns),
            "inclusion_reads_one_statement": stats(self.read_one_statement_ns), "nodes_read": stats(self.nodes_read),
            "checkpoints_stored": self.checkpoints_stored, "checkpoints_read": stats(self.checkpoints_read_ns),
            "checkpoints_read_one_stored": stats(self.checkpoints_read_one_ns),
            "per_checkpoint_ns": self.per_checkpoint_ns,
        }

    @property
    def per_checkpoint_ns(self) -> float:
        """What one more stored checkpoint adds to Store.checkpoints(), (slope from 1 to k)."""
        if not self.checkpoints_read_ns or not self.checkpoints_read_one_ns or self.checkpoints_stored < 2:
            return 0.0
        more = statistics.median(self.checkpoints_read_ns) - statistics.median(self.checkpoints_read_one_ns)
        return max(0.0, more / (self.checkpoints_stored - 1))


@dataclass
class AuditResults:
    """The audit-log section: one result per store and size, the target, and what to read them with."""

    sqlite: list[SizeResult]
    postgres: list[SizeResult]
    postgres_skipped: str | None
    filesystem: str
    notes: list[str]

    def target(self) -> tuple[SizeResult | None, bool]:
        """The SQLite log the target is judged on (10^6 entries), and whether it met it."""
        row = next((r for r in self.sqlite if r.size == TARGET_SIZE), None)
        if row is None:
            return None, False
        return row, statistics.median(row.inclusion_total_ns) < TARGET_MS * 1e6

    @property
    def passed(self) -> bool:
        return self.target()[1]

    def to_json(self) -> dict[str, Any]:
        row, passed = self.target()
        return {
            "sqlite": [r.to_json() for r in self.sqlite], "postgresql": [r.to_json() for r in self.postgres],
            "postgresql_skipped": self.postgres_skipped, "temp_dir_filesystem": self.filesystem,
            "target": {"description": f"inclusion proof + verification under {TARGET_MS:g} ms (median) at"
                                      f" {TARGET_SIZE:,} entries", "measured": row is not None,
                       "passed": passed,
                       "median_ns": statistics.median(row.inclusion_total_ns) if row else None},
            "notes": self.notes,
        }


# --- building and measuring one log ---------------------------------------------------------------


def _build(log: Log, source: EventSource, result: SizeResult, status: Callable[[str], None]) -> None:
    start = time.perf_counter()
    written = 0
    while written < log.size:
        n = min(SETUP_CHUNK, log.size - written)
        log.store.append_audit(source.take(n))
        written += n
        status(f"{log.kind} {log.size:,}: {written:,} entries written")
    result.setup_s = time.perf_counter() - start


def _first_checkpoint(log: Log, source: EventSource, result: SizeResult) -> None:
    """Sign the first checkpoint while another thread keeps appending one entry at a time, timing each append."""
    done = threading.Event()
    waits: list[float] = []

    def appender() -> None:
        time.sleep(0.005)  # let the checkpoint's transaction begin first: the tree it signs is the `size` built
        while not done.is_set():
            start = time.perf_counter()
            try:
                log.store.append_audit(source.take(1))
            except Exception as error:
                result.blocked_append_errors.append(f"{type(error).__name__}: {error}")
            waits.append(time.perf_counter() - start)
            time.sleep(0.005)

    thread = threading.Thread(target=appender, name="bench-appender")
    start = time.perf_counter()
    thread.start()
    made = log.ledger.checkpoint()
    result.first_checkpoint_s = time.perf_counter() - start
    done.set()
    thread.join()
    result.blocked_append_ms = 1e3 * max(waits, default=0.0)
    require(made is not None and made.size >= log.size, f"audit: the first checkpoint signed {made}")


def _append_rates(log: Log, source: EventSource, result: SizeResult) -> None:
    for _ in range(SINGLE_APPENDS):
        event = source.take(1)
        start = time.perf_counter_ns()
        log.store.append_audit(event)
        result.append_single_ns.append(time.perf_counter_ns() - start)
    for _ in range(BATCHES):
        events = source.take(BATCH)
        start = time.perf_counter_ns()
        log.store.append_audit(events)
        result.append_batch_ns.append(time.perf_counter_ns() - start)


def _incremental_checkpoints(log: Log, source: EventSource, result: SizeResult) -> None:
    for added, repeats in INCREMENTS:
        times = result.checkpoint_ns.setdefault(added, [])
        for _ in range(repeats):
            log.store.append_audit(source.take(added))
            start = time.perf_counter_ns()
            made = log.ledger.checkpoint()
            times.append(time.perf_counter_ns() - start)
            require(made is not None, "audit: an incremental checkpoint was not signed")


def _checkpoint_reads(log: Log, into: list[int]) -> int:
    """Time Store.checkpoints(), which reads every stored checkpoint."""
    for _ in range(50):
        start = time.perf_counter_ns()
        stored = log.store.checkpoints()
        into.append(time.perf_counter_ns() - start)
    return len(stored)


def _prepare_samples(log: Log) -> None:
    """Draw the leaves and earlier sizes to prove, in the tree of the newest checkpoint (the first one)."""
    latest = log.ledger.latest()
    require(latest is not None, "audit: no checkpoint to prove against")
    assert latest is not None
    log.signed, log.root = latest.size, latest.root
    draw = random.Random(SEED + log.size)
    log.leaves = [draw.randrange(log.signed) for _ in range(SAMPLE_POINTS)]
    olds = [draw.randrange(1, log.signed) for _ in range(SAMPLE_POINTS // 10)]
    roots = log.store.read_tree(lambda node: [merkle.tree_root(old, node) for old in olds])
    log.olds = list(zip(olds, roots, strict=True))


def _read_ab(log: Log, leaves: list[int], result: SizeResult) -> tuple[list[int], list[int], list[int]]:
    """The store reads of an inclusion proof (leaf + path) three ways, in turn, on the same leaves: node by node
    through a plain `NodeReader` (how every proof read before `BatchReader`) and in one query, both in a snapshot
    (`Store.read_tree`); and in one statement with the checkpoint (`Store.signed_nodes`)."""
    clock = time.perf_counter_ns
    size, store = log.signed, log.store
    per_node: list[int] = []
    one_query: list[int] = []
    one_statement: list[int] = []

    def by_node(index: int) -> Callable[[merkle.NodeReader], tuple[bytes, list[bytes]]]:
        def read(node: merkle.NodeReader) -> tuple[bytes, list[bytes]]:
            def plain(level: int, i: int) -> bytes:  # not a BatchReader: read_nodes falls back to one read per node
                return node(level, i)

            return plain(0, index), merkle.inclusion_proof(index, size, plain)

        return read

    def at_once(index: int) -> Callable[[merkle.NodeReader], tuple[bytes, list[bytes]]]:
        plan = merkle.inclusion_nodes(index, size)
        nodes = [(0, index), *(n for part in plan for n in part)]
        result.nodes_read.append(len(nodes))

        def read(node: merkle.NodeReader) -> tuple[bytes, list[bytes]]:
            hashes = merkle.read_nodes(nodes, node)
            return hashes[(0, index)], merkle.proof_hashes(plan, hashes)

        return read

    def signed(index: int) -> tuple[bytes, list[bytes]]:  # as Ledger.inclusion_proof reads
        plan = merkle.inclusion_nodes(index, size)
        hashes = store.signed_nodes(size, [(0, index), *(n for part in plan for n in part)])
        return hashes[(0, index)], merkle.proof_hashes(plan, hashes)

    gc.collect()
    gc.disable()
    try:
        for k, index in enumerate(leaves):
            ways = [(partial(store.read_tree, by_node(index)), per_node),
                    (partial(store.read_tree, at_once(index)), one_query), (partial(signed, index), one_statement)]
            answers = []
            for read, into in ways[k % 3:] + ways[:k % 3]:
                t0 = clock()
                answers.append(read())
                into.append(clock() - t0)
            require(answers[0] == answers[1] == answers[2], f"audit: the ways of reading proof {index} disagree")
    finally:
        gc.enable()
    return per_node, one_query, one_statement


def _proof_block(log: Log, result: SizeResult, round_: int) -> None:
    """PROOFS_PER_ROUND inclusion and as many consistency proofs, each generated then verified, each timed."""
    clock = time.perf_counter_ns
    leaves = [log.leaves[(round_ * PROOFS_PER_ROUND + k) % len(log.leaves)] for k in range(PROOFS_PER_ROUND)]
    olds = [log.olds[(round_ * PROOFS_PER_ROUND + k) % len(log.olds)] for k in range(PROOFS_PER_ROUND)]
    ledger, size, root = log.ledger, log.signed, log.root
    gen: list[int] = []
    ver: list[int] = []
    cgen: list[int] = []
    cver: list[int] = []
    ok = True
    gc.collect()
    gc.disable()
    try:
        for index in leaves:
            t0 = clock()
            proof = ledger.inclusion_proof(index, size)
            t1 = clock()
            good = merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), index, size,
                                           [bytes.fromhex(h) for h in proof["proof"]], root)
            t2 = clock()
            gen.append(t1 - t0)
            ver.append(t2 - t1)
            ok = ok and good
            result.inclusion_hashes.append(len(proof["proof"]))
        for old, old_root in olds:
            t0 = clock()
            proof = ledger.consistency_proof(old, size)
            t1 = clock()
            good = merkle.verify_consistency(old, size, old_root, root, [bytes.fromhex(h) for h in proof["proof"]])
            t2 = clock()
            cgen.append(t1 - t0)
            cver.append(t2 - t1)
            ok = ok and good
            result.consistency_hashes.append(len(proof["proof"]))
    finally:
        gc.enable()
    per_node, one_query, one_statement = _read_ab(log, leaves[: PROOFS_PER_ROUND // 2], result)
    require(ok, f"audit: a proof on the {log.kind} log of {log.size:,} entries did not verify")
    result.read_per_node_ns += per_node
    result.read_one_query_ns += one_query
    result.read_one_statement_ns += one_statement
    result.inclusion_ns += gen
    result.inclusion_verify_ns += ver
    result.consistency_ns += cgen
    result.consistency_verify_ns += cver
    result.round_medians_ns.append(float(statistics.median(a + b for a, b in zip(gen, ver, strict=True))))


def _measure_store(kind: str, sizes: Sequence[int], open_log: Callable[[int], Log], templates: list[AuditEvent],
                   console: Console, rounds: int) -> list[SizeResult]:
    """Build every size's log in `kind`, measure appends and checkpoints, then the proofs in interleaved rounds."""
    logs: list[Log] = []
    results: list[SizeResult] = []
    try:
        with console.status(f"audit: {kind}") as status:
            for size in sizes:
                source = EventSource(templates)
                log = open_log(size)
                logs.append(log)
                result = SizeResult(kind, size, leaf_bytes=source.mean_leaf_bytes)
                results.append(result)
                _build(log, source, result, lambda text: status.update(f"audit: {text}"))
                status.update(f"audit: {kind} {size:,}: first checkpoint")
                _first_checkpoint(log, source, result)
                _prepare_samples(log)  # proofs are against this checkpoint: the tree of (about) `size` entries
                result.signed = log.signed
                _checkpoint_reads(log, result.checkpoints_read_one_ns)
                status.update(f"audit: {kind} {size:,}: verifying the whole log")
                start = time.perf_counter()
                verification = log.ledger.verify()
                result.verify_s = time.perf_counter() - start
                result.verify_ok = verification.ok and verification.signed >= size
                require(result.verify_ok, f"audit: the {kind} log of {size:,} entries does not verify:"
                                          f" {verification.problems[:3]}")
                status.update(f"audit: {kind} {size:,}: appends and incremental checkpoints")
                _append_rates(log, source, result)
                _incremental_checkpoints(log, source, result)
                result.checkpoints_stored = _checkpoint_reads(log, result.checkpoints_read_ns)
                console.print(f"audit: {kind} log of {size:,} entries built in {result.setup_s:.1f} s,"
                              f" first checkpoint {result.first_checkpoint_s:.2f} s, verified in"
                              f" {result.verify_s:.1f} s")
            for r in range(rounds):
                status.update(f"audit: {kind} proofs, round {r + 1}/{rounds}")
                shift = r % len(logs)
                for log, result in [*zip(logs, results, strict=True)][shift:] + [
                        *zip(logs, results, strict=True)][:shift]:
                    _proof_block(log, result, r)
    finally:
        for log in logs:
            log.close()
    return results


def _sqlite_opener(directory: Path) -> Callable[[int], Log]:
    from interlock.store.sqlite import SqliteStore

    def open_log(size: int) -> Log:
        folder = directory / f"audit-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(folder / "interlock.db")

        def close() -> None:
            store.close()
            shutil.rmtree(folder, ignore_errors=True)

        return Log("sqlite", size, store, Ledger(store, KeyRing.generate(), _clock), close)

    return open_log


def _postgres_opener(url: str) -> Callable[[int], Log]:
    from interlock.store.postgres import PostgresStore

    def open_log(size: int) -> Log:
        schema = _postgres_schema(url)  # a schema per log, dropped when the log is closed
        scoped = schema.__enter__()
        try:
            store = PostgresStore(scoped, max_size=2)
        except BaseException:
            schema.__exit__(None, None, None)
            raise

        def close() -> None:
            try:
                store.close()
            finally:
                schema.__exit__(None, None, None)

        return Log("postgresql", size, store, Ledger(store, KeyRing.generate(), _clock), close)

    return open_log


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def run(directory: Path, console: Console, *, sizes: Sequence[int] = SIZES, rounds: int = ROUNDS,
        postgres_sizes: Sequence[int] | None = None) -> AuditResults:
    """Measure the audit log on SQLite (in `directory`) and, if configured, PostgreSQL; return the results."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scratch-gate").mkdir(exist_ok=True)
    templates = gate_events(directory / "scratch-gate")
    sqlite = _measure_store("sqlite", sizes, _sqlite_opener(directory), templates, console, rounds)
    url = os.environ.get(POSTGRES_ENV)
    postgres: list[SizeResult] = []
    skipped: str | None = None
    if url:
        postgres = _measure_store("postgresql", postgres_sizes or sizes, _postgres_opener(url), templates,
                                  console, rounds)
    else:
        skipped = f"PostgreSQL rows skipped: set {POSTGRES_ENV}=postgresql://USER@HOST:PORT/DB to run them"
    notes = [
        f"each log is built through Store.append_audit with {SETUP_CHUNK:,} gate-shaped events per call (one"
        f" transaction each), then checked whole with Ledger.verify() (every leaf rehashed, the tree against"
        f" the checkpoint); entries are a real submit → consume's audit events,"
        f" {sqlite[0].leaf_bytes:.0f} bytes per leaf on average" if sqlite else "",
        f"append 1: append_audit([event]) committed alone ({SINGLE_APPENDS} times); append {BATCH:,}:"
        f" append_audit of {BATCH:,} events in one transaction ({BATCHES} times)",
        "1st checkpoint: Ledger.checkpoint() over the whole log, which completes every Merkle node (SQLite: in"
        " write transactions of a bounded number of leaves, then signs; PostgreSQL: in the signing transaction,"
        " which appends do not wait for); 'writers wait': the longest a single append issued meanwhile (every"
        " 5 ms, from another thread) took; checkpoint +k: k entries appended, then Ledger.checkpoint() timed",
        f"proofs: {rounds} rounds × {PROOFS_PER_ROUND} inclusion + {PROOFS_PER_ROUND} consistency proofs per size,"
        " sizes interleaved; a proof is Ledger.inclusion_proof(i, n) / Ledger.consistency_proof(m, n) against"
        " the first checkpoint (n entries), verification merkle.verify_inclusion / verify_consistency on the"
        " decoded hashes; i and m uniform at random (fixed seed); 'node by node' reads the same proof through a"
        " plain NodeReader, one query per node, as every proof did before the stores' BatchReader",
        f"temp dir filesystem: {_filesystem(directory)}; load average {os.getloadavg()[0]:.2f} on"
        f" {os.cpu_count()} CPUs at the end",
    ]
    return AuditResults(sqlite, postgres, skipped, _filesystem(directory), [n for n in notes if n])


# --- the report -------------------------------------------------------------------------------------


def _t(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.0f} µs"


def _ms(values: Sequence[int]) -> str:
    """median / p99, in ms."""
    if not values:
        return ""
    return f"{statistics.median(values) / 1e6:.2f} / {p99(list(values)) / 1e6:.2f}"


def _rate(values: Sequence[int], per_call: int) -> str:
    if not values:
        return ""
    return f"{per_call * 1e9 / statistics.median(values):,.0f}"


def _print_store(console: Console, kind: str, results: list[SizeResult]) -> None:
    if not results:
        return
    setup = Table(title=f"Audit log on {kind}: building, appending, checkpoints (ms: median / p99)")
    for column in ("entries", "build (bulk)", "verify all", "append 1 ms", "per s", f"append {BATCH:,} ms",
                   "entries/s", "1st checkpoint", "writers wait", *(f"checkpoint +{k:,} ms" for k, _ in INCREMENTS)):
        setup.add_column(column, justify="right")
    for r in results:
        setup.add_row(
            f"{r.size:,}", f"{r.setup_s:.1f} s ({r.size / r.setup_s:,.0f}/s)", f"{r.verify_s:.1f} s",
            _ms(r.append_single_ns), _rate(r.append_single_ns, 1), _ms(r.append_batch_ns),
            _rate(r.append_batch_ns, BATCH), f"{r.first_checkpoint_s:.2f} s",
            f"{r.blocked_append_ms:,.0f} ms" + (f" ({len(r.blocked_append_errors)} failed)"
                                                if r.blocked_append_errors else ""),
            *(_ms(r.checkpoint_ns.get(k, [])) for k, _ in INCREMENTS),
        )
    console.print(setup)
    proofs = Table(title=f"Audit log on {kind}: proofs against the first checkpoint (ms: median / p99)")
    for column in ("entries", "log2 n", "incl. hashes", "inclusion proof", "verify", "proof + verify", "÷ first",
                   "cons. hashes", "consistency proof", "verify", "÷ first"):
        proofs.add_column(column, justify="right")
    base_incl = statistics.median(results[0].inclusion_total_ns)
    base_cons = statistics.median(results[0].consistency_total_ns)
    base_log = math.log2(results[0].size)
    for r in results:
        incl, cons = statistics.median(r.inclusion_total_ns), statistics.median(r.consistency_total_ns)
        proofs.add_row(
            f"{r.size:,}", f"{math.log2(r.size):.1f} ({math.log2(r.size) / base_log:.2f}×)",
            f"{statistics.median(r.inclusion_hashes):.0f} (max {max(r.inclusion_hashes)})",
            _ms(r.inclusion_ns), _ms(r.inclusion_verify_ns), _ms(r.inclusion_total_ns), f"{incl / base_incl:.2f}×",
            f"{statistics.median(r.consistency_hashes):.0f} (max {max(r.consistency_hashes)})",
            _ms(r.consistency_ns), _ms(r.consistency_verify_ns), f"{cons / base_cons:.2f}×",
        )
    console.print(proofs)
    reads = Table(title=f"Audit log on {kind}: one inclusion proof's store reads, three ways in turn in the same"
                  " run (ms: median / p99)")
    for column in ("entries", "nodes read", "node by node (read_tree)", "one query (read_tree)",
                   "one statement (signed_nodes)", "by node ÷ one query", "one query ÷ one statement",
                   "Ledger.inclusion_proof − one statement"):
        reads.add_column(column, justify="right")
    for r in results:
        by_node, one_query = statistics.median(r.read_per_node_ns), statistics.median(r.read_one_query_ns)
        one_statement = statistics.median(r.read_one_statement_ns)
        reads.add_row(f"{r.size:,}", f"{statistics.median(r.nodes_read):.0f}", _ms(r.read_per_node_ns),
                      _ms(r.read_one_query_ns), _ms(r.read_one_statement_ns), f"{by_node / one_query:.2f}×",
                      f"{one_query / one_statement:.2f}×",
                      f"{(statistics.median(r.inclusion_ns) - one_statement) / 1e6:.2f}")
    console.print(reads)
    per = statistics.median(r.per_checkpoint_ns for r in results)
    one = statistics.median(statistics.median(r.checkpoints_read_one_ns) for r in results)
    console.print(f"[dim]{kind}: Store.checkpoints() (every checkpoint: what `audit verify` reads; proofs read only"
                  f" the one they are proved against) takes {one / 1e3:.0f} µs with one checkpoint stored and"
                  f" {per / 1e3:.2f} µs more per further checkpoint ({results[-1].checkpoints_stored} stored here)[/]")
    for r in results:
        for error in sorted(set(r.blocked_append_errors)):
            console.print(f"[red]{kind} {r.size:,}: an append during the first checkpoint failed: {error}[/]")


def print_report(console: Console, results: AuditResults) -> None:
    """Print the audit-log tables, the target (PASS/FAIL) and the notes."""
    _print_store(console, "SQLite (WAL, synchronous=FULL)", results.sqlite)
    if results.postgres_skipped:
        console.print(f"[yellow]{results.postgres_skipped}[/]")
    _print_store(console, "PostgreSQL", results.postgres)
    postgres = next((r for r in results.postgres if r.size == TARGET_SIZE), None)
    if postgres is not None:
        median = statistics.median(postgres.inclusion_total_ns)
        verdict = "[green]PASS[/]" if median < TARGET_MS * 1e6 else "[red]FAIL[/]"
        held = sum(m < TARGET_MS * 1e6 for m in postgres.round_medians_ns)
        console.print(f"{verdict} inclusion proof + verification under {TARGET_MS:g} ms at {TARGET_SIZE:,} entries"
                      f" (PostgreSQL): median {_t(median)}, p99 {_t(p99(postgres.inclusion_total_ns))}; met in"
                      f" {held}/{len(postgres.round_medians_ns)} rounds")
    row, passed = results.target()
    if row is None:
        ran = ", ".join(f"{r.size:,}" for r in results.sqlite)
        console.print(f"[yellow]target not measured: inclusion proof + verification under {TARGET_MS:g} ms needs a"
                      f" log of {TARGET_SIZE:,} entries (sizes run: {ran})[/]")
    else:
        verdict = "[green]PASS[/]" if passed else "[red]FAIL[/]"
        held = sum(m < TARGET_MS * 1e6 for m in row.round_medians_ns)
        console.print(f"{verdict} inclusion proof + verification under {TARGET_MS:g} ms at {TARGET_SIZE:,} entries"
                      f" (SQLite): median {_t(statistics.median(row.inclusion_total_ns))}, p99"
                      f" {_t(p99(row.inclusion_total_ns))}; met in {held}/{len(row.round_medians_ns)} rounds")
    for note in results.notes:
        console.print(f"[dim]note: {escape(note)}[/]")


def main() -> int:
    """`python -m bench.audit_log [SIZE ...]`: the audit-log section alone (no results file unless --json)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.audit_log", description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES), help="log sizes (default 10^4 10^5 10^6)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"proof rounds (default {ROUNDS})")
    parser.add_argument("--postgres-sizes", nargs="*", type=int, help="PostgreSQL log sizes (default: as SQLite)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)
    with tempfile.TemporaryDirectory(prefix="interlock-bench-audit-", dir=os.environ.get("INTERLOCK_BENCH_DIR")) as tmp:
        results = run(Path(tmp), console, sizes=args.sizes, rounds=args.rounds, postgres_sizes=args.postgres_sizes)
    print_report(console, results)
    if args.json:
        args.json.write_text(json.dumps(results.to_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
