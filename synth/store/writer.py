"""Writing flows into the store: split by partition, drop flows already stored, compact, write.

`PartitionWriter` is what a live collection writes through (its files become visible at each
flush); `StagedWriter` is an import's (nothing is visible before its commit, then all of it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from synth.base.signals import interrupts_deferred
from synth.store.commits import Commit, write_commit
from synth.store.compact import compact_table
from synth.store.dataset import ImportEntry
from synth.store.files import (
    FACTS_KEY,
    ROW_GROUP_ROWS,
    VERSION_KEY,
    delete_files,
    file_table,
    publish_tree,
    read_ids,
    temporary_path,
    write_file,
    write_ids,
)
from synth.store.schema import FLOW_SCHEMA, SCHEMA_VERSION
from synth.store.seen import SeenFlows

if TYPE_CHECKING:
    from synth.store.dataset import Store

_NS_PER_HOUR = 3_600_000_000_000
# Rows kept in memory across all open partitions before the largest is written out.
_BUFFER_ROWS = 65_536


def partition_of(hour_index: int, source: str) -> str:
    """`source=S/date=D/hour=H` for an hour counted from the epoch."""
    moment = datetime.fromtimestamp(hour_index * 3600, tz=UTC)
    return f"source={source}/date={moment:%Y-%m-%d}/hour={moment:%H}"


class PartitionWriter:
    """Splits batches by source and hour, drops flows already stored, compacts, writes Parquet files.

    Each file is written with the identities of its flows (`ids/`, same partition and name). On a
    local disk both are written under dot-names and renamed when complete (identities first, so a
    flow file never goes without them); on an object store they are published by a commit record
    at each `flush()`. Memory is bounded by `_BUFFER_ROWS` across partitions.
    """

    #: identical flows within this interval are stored as one row with a count (0: store every flow)
    COMPACT_INTERVAL_NS = 60_000_000_000

    def __init__(self, store: Store, tree: str, facts: dict[str, object], file_id: str) -> None:
        self.store = store
        self.fs = store.fs
        self.tree = tree
        self.file_id = file_id
        self.schema = FLOW_SCHEMA.with_metadata(
            {VERSION_KEY: str(SCHEMA_VERSION).encode(), FACTS_KEY: json.dumps(facts, sort_keys=True).encode()}
        )
        self._buffers: dict[str, list[pa.RecordBatch]] = {}
        self._buffered_rows = 0
        self._sequence = 0
        self.rows_written = 0
        self.flows_written = 0
        self.duplicates = 0  # flows dropped because they were stored already
        self.files_written: list[str] = []
        self.unpublished: list[str] = []  # object store: files written since the last commit record
        self.compact_interval_ns = self.COMPACT_INTERVAL_NS
        self.seen = SeenFlows(self._stored_ids)
        # Object store: the committed files, read once (the writer holds the lock: only it adds to them).
        self._committed: set[str] | None = None

    def _stored_ids(self, partition: str) -> pa.Table:
        if self.store.renames:  # a staged import's own files are not in the store yet: read them too
            own = [f"{self.tree}/ids/{partition}/{path.rsplit('/', 1)[1]}" for path in self.files_written
                   if self.tree != self.store.root and f"/flows/{partition}/" in path]
            return pa.concat_tables([self.store.stored_ids(partition), read_ids(self.fs, own)])
        if self._committed is None:
            self._committed = self.store.committed()
        return self.store.stored_ids(partition, self._committed | set(self.unpublished))

    def set_facts(self, facts: dict[str, object]) -> None:
        """Replace the facts written into files from now on (e.g. lost-event totals)."""
        metadata = dict(self.schema.metadata or {})
        metadata[FACTS_KEY] = json.dumps(facts, sort_keys=True).encode()
        self.schema = self.schema.with_metadata(metadata)

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue a FLOW_SCHEMA batch; partitions are written when the buffer is full."""
        if batch.num_rows == 0:
            return
        for partition, part in _split_by_partition(batch):
            self._buffers.setdefault(partition, []).append(part)
            self._buffered_rows += part.num_rows
        while self._buffered_rows > _BUFFER_ROWS:
            largest = max(self._buffers, key=lambda p: sum(b.num_rows for b in self._buffers[p]))
            self._write_partition(largest)

    def flush(self) -> None:
        """Write every buffered row; afterwards all of them are visible in the store."""
        for partition in sorted(self._buffers):
            self._write_partition(partition)
        self._publish()

    close = flush

    def _publish(self) -> None:
        """Object store: one commit record makes the files written since the last one visible."""
        if self.unpublished:
            write_commit(self.fs, self.store.root, Commit(f"{self.file_id}-{self._sequence:05d}",
                                                          tuple(self.unpublished)))
            if self._committed is not None:
                self._committed |= set(self.unpublished)
            self.unpublished = []

    def _write_partition(self, partition: str) -> None:
        batches = self._buffers.pop(partition, [])
        rows = sum(b.num_rows for b in batches)
        if not rows:
            return
        self._buffered_rows -= rows
        table, ids = self.seen.novel(partition, _source_of(partition), pa.Table.from_batches(batches, FLOW_SCHEMA))
        del batches
        self.duplicates += rows - table.num_rows
        if not table.num_rows:
            return
        self._sequence += 1
        name = f"part-{self.file_id}-{self._sequence:05d}.parquet"
        flows = table.num_rows
        if self.compact_interval_ns:
            table = compact_table(table, self.compact_interval_ns)
        stored = file_table(table, self.schema.metadata)
        del table
        written_rows = stored.num_rows
        self._put(f"ids/{partition}/{name}", lambda sink: write_ids(ids, sink))
        final = self._put(f"flows/{partition}/{name}", lambda sink: pq.write_table(
            stored, sink, row_group_size=ROW_GROUP_ROWS, compression="zstd"))
        release_memory()
        self.rows_written += written_rows
        self.flows_written += flows
        self.files_written.append(final)

    def _put(self, relative: str, write: Callable[[pa.NativeFile], object]) -> str:
        """Write one file of the tree: renamed into place (local), or noted for the next commit record."""
        final = f"{self.tree}/{relative}"
        if not self.store.renames:  # an object store has no folders to create
            write_file(self.fs, final, write)
            self.unpublished.append(relative)
            return final
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        temporary = temporary_path(final)
        write_file(self.fs, temporary, write)
        self.fs.move(temporary, final)
        return final


def _trim() -> Callable[[int], object] | None:
    try:
        trim: Callable[[int], object] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _trim()


def release_memory() -> None:
    """Hand freed memory back to the OS after each written file, so a long import's RSS stays flat.

    Arrow's pool keeps freed blocks, and glibc keeps the heap that multi-megabyte input blocks and
    IPC buffers fragmented; both are returned here (cheaper than forcing every large buffer into mmap).
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _split_by_partition(batch: pa.RecordBatch) -> Iterable[tuple[str, pa.RecordBatch]]:
    hours = pc.divide(batch.column("time").cast(pa.int64()), _NS_PER_HOUR)
    sources = batch.column("source")
    source_values = pc.unique(sources.dictionary_decode() if pa.types.is_dictionary(sources.type) else sources)
    hour_values = pc.unique(hours).to_pylist()
    if len(hour_values) == 1 and len(source_values) == 1:
        yield partition_of(hour_values[0], source_values[0].as_py()), batch
        return
    decoded = sources.dictionary_decode() if pa.types.is_dictionary(sources.type) else sources
    for source in source_values.to_pylist():
        for hour in sorted(hour_values):
            mask = pc.and_(pc.equal(hours, hour), pc.equal(decoded, source))
            part = batch.filter(mask)
            if part.num_rows:
                yield partition_of(hour, source), part


def _source_of(partition: str) -> str:
    return partition.split("/", 1)[0].removeprefix("source=")


class StagedWriter(PartitionWriter):
    """A partition writer whose files stay invisible until `commit()` makes them visible as a whole.

    Local disk: files go to `.staging/<id>/`, moved into place after the ledger entry is written.
    Object store: files go to their final names, published by one commit record before the ledger entry.
    """

    def __init__(self, store: Store, import_id: str, facts: dict[str, object]) -> None:
        tree = store._path(".staging", import_id) if store.renames else store.root
        super().__init__(store, tree, facts, import_id)
        self.import_id = import_id

    def _publish(self) -> None:
        """Nothing is visible before `commit()`."""

    def commit(
        self, *, input_name: str, sha256: str, size: int, mtime_ns: int, facts: dict[str, object]
    ) -> ImportEntry:
        """Record the import in the ledger and make its files visible.

        Ctrl-C during these steps takes effect after them: the import is then committed as a whole.
        """
        self.flush()
        entry = ImportEntry(
            id=self.import_id,
            input=input_name,
            sha256=sha256,
            size=size,
            mtime_ns=mtime_ns,
            flows=self.flows_written,
            imported_at=datetime.now(UTC).isoformat(timespec="milliseconds"),  # orders imports within a second
            facts=facts,
        )
        with interrupts_deferred():
            if not self.store.renames:
                super()._publish()
                self.store._write_ledger(entry)
                return entry
            self.store._write_ledger(entry)
            publish_tree(self.fs, self.tree, self.store.root)
            self.discard()
        return entry

    def discard(self) -> None:
        """Forget everything written so far (nothing of it was ever visible)."""
        self._buffers.clear()
        self._buffered_rows = 0
        if not self.store.renames:
            delete_files(self.fs, [self.store._path(p) for p in self.unpublished])
            self.unpublished = []
        elif self.fs.get_file_info(self.tree).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.tree)
