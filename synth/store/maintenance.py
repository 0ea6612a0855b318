"""Upkeep of a store: compaction of closed hours.

The store's writer compacts each batch it writes (`synth.store.compact`); this module works on the
files already stored, through the `Store`'s own atomic replace, so a reader never sees a row twice.
The identities of the replaced files' flows go into one file beside the new one, so a flow stored
before compaction is still recognised after it. An hour is rewritten in runs of files of at most
`CHUNK_ROWS` rows, one file per run, so memory stays bounded however busy the hour was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from synth.store.compact import MINUTE_NS, compact_table
from synth.store.dataset import Store, StoredFile
from synth.store.faults import write_failure
from synth.store.files import FACTS_KEY, system_allocator
from synth.store.schema import FLOW_SCHEMA

CHUNK_ROWS = 80_000
"""Stored rows compacted together at most (about 3 KB of memory each while compacted): an hour with more
becomes several files."""


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
    with store.writing(), system_allocator():
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
        rewritten = False
        for chunk, interval in _chunks(store, files):
            if len(chunk) == 1 and interval == interval_ns:
                continue  # compacted at this interval already: doing it again changes nothing
            table = pa.concat_tables(
                pa.Table.from_batches(list(store.read_file(f)), schema=FLOW_SCHEMA) for f in chunk
            )
            compacted = compact_table(table, interval_ns)
            if len(chunk) == 1 and compacted.num_rows == table.num_rows:
                continue
            files_before += len(chunk)
            rows_before += table.num_rows
            rows_after += compacted.num_rows
            bytes_before += sum(store.size(f) for f in chunk)
            ids = store.ids_of(chunk)
            del table
            try:
                facts = {"source": chunk[0].source, "compacted": True, "interval_ns": interval_ns}
                written = store.replace_files(chunk, compacted, facts, ids)
            except OSError as e:
                raise write_failure(store.root_text, e, f"compaction stopped: {hours} hours were compacted, the "
                                    "others are as they were") from e
            rewritten = True
            files_after += 1
            bytes_after += store.size(written)
        hours += rewritten
    return CompactReport(hours, files_before, files_after, rows_before, rows_after, bytes_before, bytes_after)


def _chunks(store: Store, files: list[StoredFile]) -> Iterator[tuple[list[StoredFile], int | None]]:
    """An hour's files in runs of at most `CHUNK_ROWS` stored rows (a larger file alone), and the interval
    at which compaction wrote every file of the run (None: not all of them): each run is rewritten as one
    file, so compaction's memory follows the run, not the hour (a busy cluster's hour holds tens of
    millions of flows)."""
    chunk: list[StoredFile] = []
    rows, interval = 0, None
    for stored in files:
        parquet = store.open_file(stored)
        size = parquet.metadata.num_rows
        if chunk and rows + size > CHUNK_ROWS:
            yield chunk, interval
            chunk, rows = [], 0
        facts = json.loads((parquet.schema_arrow.metadata or {}).get(FACTS_KEY, b"{}"))
        # files compacted before the interval was written down were compacted by the minute
        written = facts.get("interval_ns", MINUTE_NS) if facts.get("compacted") is True else None
        interval = written if not chunk or written == interval else None
        chunk.append(stored)
        rows += size
    if chunk:
        yield chunk, interval
