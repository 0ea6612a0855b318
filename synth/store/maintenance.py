"""Upkeep of a store: compaction of closed hours.

The store's writer compacts each batch it writes (`synth.store.compact`); this module works on the
files already stored, through the `Store`'s own atomic replace, so a reader never sees a row twice.
The identities of the replaced files' flows go into one file beside the new one, so a flow stored
before compaction is still recognised after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from synth.store.compact import MINUTE_NS, compact_table
from synth.store.dataset import Store, StoredFile
from synth.store.faults import write_failure
from synth.store.schema import FLOW_SCHEMA


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What `compact_store` did."""

    hours: int
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int
    bytes_before: int
    bytes_after: int


def compact_store(store: Store, *, before_ns: int | None = None, interval_ns: int = MINUTE_NS,
                  progress: Callable[[int, int], None] | None = None) -> CompactReport:
    """Rewrite each hour (older than `before_ns`) that has several files, or uncompacted rows, as one file."""
    store.refuse_file()
    if not store.exists():  # nothing to compact, and no lock file to leave in a folder that was not a store
        return CompactReport(0, 0, 0, 0, 0, 0, 0)
    with store.writing():
        store.recover()
        return _compact(store, before_ns, interval_ns, progress)


def _compact(store: Store, before_ns: int | None, interval_ns: int,
             progress: Callable[[int, int], None] | None) -> CompactReport:
    by_hour: dict[tuple[str, int], list[StoredFile]] = {}
    for stored in store.files():
        if before_ns is None or stored.hour_start_ns + 3_600_000_000_000 <= before_ns:
            by_hour.setdefault((stored.source, stored.hour_start_ns), []).append(stored)
    hours = files_before = files_after = rows_before = rows_after = bytes_before = bytes_after = 0
    for position, ((_source, _hour), files) in enumerate(sorted(by_hour.items())):
        if progress is not None:
            progress(position, len(by_hour))
        table = pa.concat_tables(
            pa.Table.from_batches(list(store.read_file(f)), schema=FLOW_SCHEMA) for f in files
        )
        compacted = compact_table(table, interval_ns)
        if len(files) == 1 and compacted.num_rows == table.num_rows:
            continue
        hours += 1
        files_before += len(files)
        rows_before += table.num_rows
        rows_after += compacted.num_rows
        bytes_before += sum(store.size(f) for f in files)
        ids = store.ids_of(files)
        try:
            written = store.replace_files(files, compacted, {"source": files[0].source, "compacted": True}, ids)
        except OSError as e:
            raise write_failure(store.root_text, e, f"compaction stopped: {hours - 1} hours were compacted, the "
                                "others are as they were") from e
        files_after += 1
        bytes_after += store.size(written)
    return CompactReport(hours, files_before, files_after, rows_before, rows_after, bytes_before, bytes_after)
