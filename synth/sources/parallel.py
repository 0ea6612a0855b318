"""Blocks of an input read ahead on a thread, and the counts each block's parsing returns.

The reading thread reads, decompresses and hashes the next block while the current one is
parsed (zlib, hashlib and file reads release the GIL; DuckDB parses on its own threads), so
one import uses every core without worker processes: nothing can outlive the import, whatever
ends it, and memory is that of one process.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow as pa

from synth.sources.interface import KEPT_SKIPS, SourceStats

T = TypeVar("T")


@dataclass(slots=True)
class BlockResult:
    """The batches one block gave, and what was counted on the way."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    stats: SourceStats = field(default_factory=SourceStats)


def default_jobs() -> int:
    """Threads for parsing: one per core the process may use, at most 4."""
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


_END = object()


def prefetched(items: Iterator[T], ahead: int = 1) -> Iterator[T]:
    """The items of `items`, produced on a thread up to `ahead` items before they are taken.

    An error of the producer is raised here, in order; when the consumer stops early, the thread
    stops at its next item (it is a daemon: one blocked on its input never holds the process).
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            slots.put(e)
            return
        slots.put(_END)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # Unblock a producer waiting to put; one blocked on its input is left to end with the process.
        while True:
            try:
                slots.get_nowait()
            except queue.Empty:
                break
