"""The embedded engine: a window of the store grouped by DuckDB in one pass, in bounded memory.

The store's files are read through its own filesystem (local disk or S3, the snapshot listed once),
a few at a time on every core, and handed to DuckDB as a stream of Arrow record batches, so DuckDB
needs no extension and never opens a path itself. Grouping by strings and maps of strings is what
costs most per flow, so DuckDB sees integers only: strings stay dictionary-encoded as Parquet holds
them, each label map becomes a `LabelSets` id, and each side's endpoint (kind, namespace, pod, owner,
labels, address) and the flow's verdict, direction, protocol and port become `RowIds` ids, all in
Arrow, on the reading threads, which also find each batch's hours and DNS names. DuckDB reduces every
flow of the window to one row per distinct combination (usually thousands, whatever the number of
flows); the ids are turned back into columns and the `Accumulator` makes partials, identities and
edges of them as for any other engine.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.base.errors import StoreError
from synth.core.aggregate import HTTP_COLUMNS, Accumulator, hours_of, name_pairs
from synth.core.interning import RowIds
from synth.store.dataset import Store, StoredFile, absent_columns
from synth.store.files import system_allocator, unreadable
from synth.store.schema import FLOW_SCHEMA

FileProgress = Callable[[int, int, int], None]
"""`on_file(done, total, flows)`, called after each file, for a progress display."""

MEMORY_LIMIT = "256MB"
"""DuckDB's own memory (its hash tables); what it groups is small, so this is a ceiling, not a need."""
_MAX_THREADS = 4
_LABEL_COLUMNS = ("src_labels", "dst_labels", "src_ns_labels", "dst_ns_labels")
_BATCH_ROWS = 131_072
_GROUP_ROWS = 65_536  # small files are read together into batches of about this many rows
_NAME_COLUMNS = ("dns_query", "dns_answers", "dst_ip", "dst_names")
_AGGREGATES = (
    'count(*)::BIGINT AS "rows", sum("count")::BIGINT AS "count", min("time") AS time_min, max("time") AS time_max'
)


@dataclass(frozen=True, slots=True)
class _Ids:
    """Columns that DuckDB sees as one id column (each side's endpoint, the flow's kind and port)."""

    name: str
    columns: tuple[str, ...]


def _id_columns(columns: Sequence[str]) -> tuple[_Ids, ...]:
    def side(name: str, *extra: str) -> _Ids:
        parts = ("kind", "namespace", "pod", "workload", "labels", "ip", *extra)
        wanted = (part for part in parts if part != "ns_labels" or f"{name}_ns_labels" in columns)
        return _Ids(name, tuple(f"{name}_{part}" for part in wanted))

    return (
        side("src", "ns_labels"),
        side("dst", "service", "ns_labels"),
        _Ids("flow", ("verdict", "drop_reason", "direction", "is_reply", "protocol", "dst_port",
                      *(name for name in HTTP_COLUMNS if name in columns))),
    )


def accumulate_store(
    store: Store,
    columns: Sequence[str],
    *,
    namespaces: Sequence[str] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    on_file: FileProgress | None = None,
) -> Accumulator:
    """Every stored flow in [since, until) folded into an accumulator (`columns`: FLOW_COLUMNS, or
    OBSERVED_COLUMNS to keep the namespaces' labels too)."""
    accumulator = Accumulator(namespaces)
    encoder = _Encoder(accumulator, columns, (since_ns, until_ns))
    failures: list[BaseException] = []
    batches = _stream(store, encoder, accumulator, on_file, failures)
    keys = ", ".join(f'"{name}"' for name in encoder.ids)
    query = f"SELECT {keys}, {_AGGREGATES} FROM flows GROUP BY ALL"  # noqa: S608 - the stream's own column names
    threads = min(len(os.sched_getaffinity(0)), _MAX_THREADS)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": MEMORY_LIMIT,
        "threads": threads,
        "preserve_insertion_order": False,
    }
    with duckdb.connect(config=config) as connection, system_allocator():
        connection.register("flows", pa.RecordBatchReader.from_batches(encoder.schema, batches))
        try:
            grouped = connection.sql(query).to_arrow_table()
        except duckdb.OutOfMemoryException as e:
            raise StoreError(
                f"{store.root_text}: grouping the flows needs more than {MEMORY_LIMIT}: narrow the window "
                "(--since/--until) or use --engine spark"
            ) from e
        except duckdb.Error:
            if not failures:
                raise
    if failures:  # reading a file failed: its own error, not DuckDB's account of it
        raise failures[0]
    accumulator.add_grouped(_expanded(grouped, encoder.ids))
    return accumulator


class _Encoder:
    """Reads one stored file into batches of ids, counts and times (safe to run on several files at once)."""

    def __init__(self, accumulator: Accumulator, columns: Sequence[str], window: tuple[int | None, int | None]) -> None:
        self.label_sets = accumulator.label_sets
        self.groups = {group.name: group.columns for group in _id_columns(columns)}
        self.ids = {name: RowIds(_plain_schema(group)) for name, group in self.groups.items()}
        self.schema = _stream_schema(self.ids)
        self.window = window
        self.columns = sorted({*(c for group in self.groups.values() for c in group), "count", "time", *_NAME_COLUMNS})
        self.labels = [name for name in self.columns if name in _LABEL_COLUMNS]
        self.dictionary = [name for name in self.columns if pa.types.is_string(FLOW_SCHEMA.field(name).type)]
        self.dictionary += [f"{name}.key_value.{part}" for name in self.labels for part in ("key", "value")]
        # what a column reads as (strings come dictionary-encoded): a file without it gets nulls of that type
        self._read_types = {name: pa.dictionary(pa.int32(), pa.string()) if name in self.dictionary
                            else FLOW_SCHEMA.field(name).type for name in self.columns}

    def read(self, store: Store, files: _Files) -> tuple[list[_Read], int]:
        """The flows in the window of the next files of `files`, as batches of `schema` (each with the
        hours and DNS names of its flows), and how many files were read. Files are taken until `_GROUP_ROWS` rows were
        read, and small ones become one batch together: a store written by a collection holds a
        small file per flush, and what costs per batch (Arrow calls, DuckDB's scan) would otherwise be
        paid per file."""
        encoded: list[_Read] = []
        pending: list[pa.RecordBatch] = []
        rows = taken = 0

        def flush() -> None:
            nonlocal rows
            if pending:
                batch = pending[0] if len(pending) == 1 else _concatenated(pending)
                times = batch.column("time").cast(pa.int64())
                encoded.append(_Read(self._encode(batch), hours_of(times), name_pairs(batch)))
                pending.clear()
                rows = 0

        while not encoded and rows < _GROUP_ROWS and (stored := files.next()) is not None:
            taken += 1
            parquet = store.open_file(stored, read_dictionary=self.dictionary)
            for batch in self._batches(parquet, stored):
                if pending and (rows + batch.num_rows > _GROUP_ROWS or batch.schema != pending[0].schema):
                    flush()
                pending.append(batch)
                rows += batch.num_rows
        flush()
        return encoded, taken

    def _batches(self, parquet: pq.ParquetFile, stored: StoredFile) -> Iterator[pa.RecordBatch]:
        """A file's flows in the window, as batches of `columns` in that order."""
        absent = absent_columns(parquet, self.columns)
        columns = [name for name in self.columns if name not in absent]
        try:
            for batch in parquet.iter_batches(columns=columns, batch_size=_BATCH_ROWS, use_threads=False):
                for name in absent:  # a file written before the column was added
                    batch = batch.append_column(name, pa.nulls(batch.num_rows, self._read_types[name]))
                batch = _windowed(batch.select(self.columns), self.window)
                if batch.num_rows:
                    yield batch
        except (OSError, pa.ArrowInvalid) as e:  # bit rot or a truncated page: the store's own message
            raise unreadable(stored.path, e) from e

    def _encode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = {name: batch.column(name) for name in self.columns}
        arrays["time"] = arrays["time"].cast(pa.int64())
        for name in self.labels:
            arrays[name] = self.label_sets.encode(arrays[name])
        for name, registry in self.ids.items():
            arrays[name] = registry.encode([arrays[column] for column in self.groups[name]])
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema)


@dataclass(frozen=True, slots=True)
class _Read:
    """A batch as DuckDB sees it, the hours of its flows and the (address, DNS name) pairs they show."""

    batch: pa.RecordBatch
    hours: list[int]
    names: list[tuple[str, str]]


class _Files:
    """The files of the window, handed out one at a time to the reading threads."""

    def __init__(self, files: Sequence[StoredFile]) -> None:
        self._files = iter(files)
        self._lock = threading.Lock()
        self.exhausted = False

    def next(self) -> StoredFile | None:
        with self._lock:
            stored = next(self._files, None)
            self.exhausted = stored is None
            return stored


def _concatenated(batches: Sequence[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of several (their dictionaries unified)."""
    table = pa.Table.from_batches(batches).combine_chunks()
    return pa.RecordBatch.from_arrays([column.chunk(0) for column in table.columns], schema=table.schema)


def _plain_schema(columns: Sequence[str]) -> pa.Schema:
    """The columns' values as Python sees them: strings, ports, label set ids."""
    fields = []
    for name in columns:
        kind = FLOW_SCHEMA.field(name).type
        if name in _LABEL_COLUMNS:
            kind = pa.int32()
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _stream_schema(ids: dict[str, RowIds]) -> pa.Schema:
    """What DuckDB is fed: ids, counts and times in epoch nanoseconds."""
    return pa.schema(
        [*(pa.field(name, pa.int32()) for name in ids), pa.field("count", pa.int64()), pa.field("time", pa.int64())]
    )


def _expanded(grouped: pa.Table, ids: dict[str, RowIds]) -> pa.Table:
    """The grouped rows with each id column replaced by the columns it stands for."""
    table = grouped.drop_columns(list(ids))
    for name, registry in ids.items():
        values = registry.table().take(grouped.column(name))
        for field in values.schema:
            table = table.append_column(field, values.column(field.name))
    return table


def _stream(
    store: Store,
    encoder: _Encoder,
    accumulator: Accumulator,
    on_file: FileProgress | None,
    failures: list[BaseException],
) -> Iterator[pa.RecordBatch]:
    """The window's flows as the encoder makes them, files read and encoded on every core a few
    ahead of DuckDB; hours and DNS names are counted on the way. A failure ends the stream and is
    kept in `failures` (DuckDB would only pass its text on)."""
    files = store.files(*encoder.window)
    workers = min(len(os.sched_getaffinity(0)), _MAX_THREADS)
    rows = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="synth-read") as pool:
        pending: deque[Future[tuple[list[_Read], int]]] = deque()
        source = _Files(files)
        done = 0
        try:
            while True:
                while len(pending) < workers and not source.exhausted:
                    pending.append(pool.submit(encoder.read, store, source))
                if not pending:
                    break
                encoded, taken = pending.popleft().result()
                for read in encoded:
                    rows += read.batch.num_rows
                    accumulator.stats.hours.update(read.hours)
                    accumulator.remember_names(read.names)
                    yield read.batch
                done += taken
                if on_file is not None and taken:
                    on_file(done, len(files), rows)
        except Exception as e:  # noqa: BLE001 - handed over whole, raised again by accumulate_store
            failures.append(e)
        finally:
            for future in pending:
                future.cancel()


def _windowed(batch: pa.RecordBatch, window: tuple[int | None, int | None]) -> pa.RecordBatch:
    since_ns, until_ns = window
    if since_ns is None and until_ns is None:
        return batch
    times = batch.column("time").cast(pa.int64())
    low = since_ns if since_ns is not None else -(2**63)
    high = until_ns if until_ns is not None else 2**63 - 1
    return batch.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high)))
