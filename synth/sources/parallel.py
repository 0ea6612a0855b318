"""Parse whole-line blocks of an input on every core, keeping the input's order.

The reading process hashes and splits the input into blocks; worker processes parse blocks into
Arrow batches and send them back as IPC bytes; results are taken in input order, so the store gets
the same rows whatever the number of workers. At most two blocks per worker are in flight, so
memory stays flat however large the input is.

Workers never outlive the reading process: each asks the kernel to kill it when its parent dies
(Linux `PR_SET_PDEATHSIG`; elsewhere a thread watches the parent), so `kill -9` of an import leaves
no process behind, and the multiprocessing resource tracker ends once the workers are gone. Workers
start with SIGINT blocked and then ignore it: Ctrl-C reaches the whole process group, and only the
reading process decides what an interrupt means (it stops the workers; the import discards what it
staged).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import pyarrow as pa

from synth.sources.interface import KEPT_SKIPS, SourceStats
from synth.store.schema import FLOW_SCHEMA


@dataclass(slots=True)
class BlockResult:
    """The batches one block gave, and what was counted on the way."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    stats: SourceStats = field(default_factory=SourceStats)


BlockParser = Callable[[int, bytes], BlockResult]


def default_jobs() -> int:
    """Worker processes for an import: one per core the process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def merge_stats(total: SourceStats, part: SourceStats) -> None:
    """Add one block's counts to the running total (skips kept in input order)."""
    total.records += part.records
    total.flows += part.flows
    total.skipped += part.skipped
    total.skips.extend(part.skips[: max(0, KEPT_SKIPS - len(total.skips))])
    total.lost_events += part.lost_events
    total.lost_by_node.update(part.lost_by_node)
    total.other_events.update(part.other_events)
    if part.first_time_ns is not None and part.last_time_ns is not None:
        total.saw_time(part.first_time_ns, part.last_time_ns)


_PR_SET_PDEATHSIG = 1
_PARENT_POLL_S = 1.0


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process when `parent_pid` ends, however it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _kill_on_parent_death():
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()
    # The parent may have died before the request above was made; then this process was already adopted.
    if os.getppid() != parent_pid:
        os._exit(1)


def _kill_on_parent_death() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _in_worker(parser: BlockParser, start: int, block: bytes) -> tuple[bytes, SourceStats]:
    result = parser(start, block)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, FLOW_SCHEMA) as writer:
        for batch in result.batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes(), result.stats


def _from_ipc(data: bytes) -> list[pa.RecordBatch]:
    return list(pa.ipc.open_stream(data))


def parse_blocks(blocks: Iterator[tuple[int, bytes]], parser: BlockParser, jobs: int,
                 stats: SourceStats) -> Iterator[pa.RecordBatch]:
    """Batches of every block in input order; uses worker processes when there is more than one block."""
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    if second is None or jobs <= 1:
        for start, block in _chain(first, second, blocks):
            result = parser(start, block)
            merge_stats(stats, result.stats)
            yield from result.batches
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    try:
        pending: deque[Future[tuple[bytes, SourceStats]]] = deque()
        work = partial(_in_worker, parser)
        for start, block in _chain(first, second, blocks):
            with _interrupts_blocked():  # submit() may start a worker: it inherits the blocked SIGINT
                pending.append(pool.submit(work, start, block))
            while len(pending) >= 2 * jobs:
                yield from _collect(pending.popleft(), stats)
        while pending:
            yield from _collect(pending.popleft(), stats)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _interrupts_blocked() -> Iterator[None]:
    """Hold SIGINT back in this thread; a worker started meanwhile never sees one, even before its initializer."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the workers now (an error or an interrupt): queued blocks are dropped, busy workers killed."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join()
    pool.shutdown(wait=True, cancel_futures=True)


def _collect(future: Future[tuple[bytes, SourceStats]], stats: SourceStats) -> Iterator[pa.RecordBatch]:
    data, part = future.result()
    merge_stats(stats, part)
    yield from _from_ipc(data)


def _chain(first: tuple[int, bytes], second: tuple[int, bytes] | None,
           rest: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    yield first
    if second is not None:
        yield second
        yield from rest
