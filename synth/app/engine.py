"""The embedded engine: a window of the store grouped by DuckDB in one pass, in bounded memory.

The store's files are read through its own filesystem (local disk or S3, the snapshot listed once)
and handed to DuckDB as a stream of Arrow record batches, so DuckDB needs no extension and never
opens a path itself. Strings stay dictionary-encoded as Parquet holds them, and each label map
becomes a small integer id (`LabelSets`) before DuckDB sees it: grouping by maps of strings is what
costs most per flow. DuckDB then reduces every flow of the window to one row per distinct
combination of `GROUPED_KEYS` (usually thousands, whatever the number of flows), and the
`Accumulator` turns those into partials, identities and edges as for any other engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from synth.base.errors import StoreError
from synth.core.aggregate import Accumulator
from synth.core.interning import RowIds
from synth.store.dataset import Store
from synth.store.schema import FLOW_SCHEMA

FileProgress = Callable[[int, int, int], None]
"""`on_file(done, total, flows)`, called after each file, for a progress display."""

MEMORY_LIMIT = "256MB"
"""DuckDB's own memory (its hash tables); what it groups is small, so this is a ceiling, not a need."""
_MAX_THREADS = 4
_LABEL_COLUMNS = ("src_labels", "dst_labels", "src_ns_labels", "dst_ns_labels")
_BATCH_ROWS = 131_072
_AGGREGATES = (
    'count(*)::BIGINT AS "rows", sum("count")::BIGINT AS "count", min("time") AS time_min, max("time") AS time_max'
)
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


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
        _Ids("flow", ("verdict", "drop_reason", "direction", "is_reply", "protocol", "dst_port")),
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
    ids = {group.name: RowIds(_plain_schema(group.columns)) for group in _id_columns(columns)}
    groups = {group.name: group.columns for group in _id_columns(columns)}
    schema = _stream_schema(ids)
    batches = _stream(store, (since_ns, until_ns), accumulator, ids, groups, schema, on_file)
    keys = ", ".join(f'"{name}"' for name in schema.names if name not in ("time", "count"))
    query = f"SELECT {keys}, {_AGGREGATES} FROM flows GROUP BY ALL"  # noqa: S608 - the stream's own column names
    threads = min(len(os.sched_getaffinity(0)), _MAX_THREADS)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": MEMORY_LIMIT,
        "threads": threads,
        "preserve_insertion_order": False,
    }
    with duckdb.connect(config=config) as connection:
        connection.register("flows", pa.RecordBatchReader.from_batches(schema, batches))
        try:
            grouped = connection.sql(query).to_arrow_table()
        except duckdb.OutOfMemoryException as e:
            raise StoreError(
                f"{store.root_text}: grouping the flows needs more than {MEMORY_LIMIT}: narrow the window "
                "(--since/--until) or use --engine spark"
            ) from e
    accumulator.add_grouped(_expanded(grouped, ids))
    return accumulator


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
    """What DuckDB is fed: ids, the DNS columns, counts and times in epoch nanoseconds."""
    return pa.schema(
        [
            *(pa.field(name, pa.int32()) for name in ids),
            pa.field("dns_query", _DICTIONARY),
            FLOW_SCHEMA.field("dst_names"),
            FLOW_SCHEMA.field("dns_answers"),
            pa.field("count", pa.int64()),
            pa.field("time", pa.int64()),
        ]
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
    window: tuple[int | None, int | None],
    accumulator: Accumulator,
    ids: dict[str, RowIds],
    groups: dict[str, tuple[str, ...]],
    schema: pa.Schema,
    on_file: FileProgress | None,
) -> Iterator[pa.RecordBatch]:
    """The window's flows in `schema`, file by file; label sets, endpoints and hours are counted on the way."""
    columns = sorted({*(c for group in groups.values() for c in group), *schema.names} - set(ids))
    labels = [name for name in columns if name in _LABEL_COLUMNS]
    dictionary = [name for name in columns if pa.types.is_string(FLOW_SCHEMA.field(name).type)]
    dictionary += [f"{name}.key_value.{part}" for name in labels for part in ("key", "value")]
    files = store.files(*window)
    rows = 0
    for position, stored in enumerate(files, 1):
        parquet = store.open_file(stored, read_dictionary=dictionary)
        for batch in parquet.iter_batches(columns=columns, batch_size=_BATCH_ROWS):
            batch = _windowed(batch, window)
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            arrays = {name: batch.column(name) for name in columns}
            arrays["time"] = arrays["time"].cast(pa.int64())
            for name in labels:
                arrays[name] = accumulator.label_sets.encode(arrays[name])
            for name, registry in ids.items():
                arrays[name] = registry.encode([arrays[column] for column in groups[name]])
            accumulator.count_hours(arrays["time"])
            yield pa.RecordBatch.from_arrays([arrays[f.name].cast(f.type) for f in schema], schema=schema)
        if on_file is not None:
            on_file(position, len(files), rows)


def _windowed(batch: pa.RecordBatch, window: tuple[int | None, int | None]) -> pa.RecordBatch:
    since_ns, until_ns = window
    if since_ns is None and until_ns is None:
        return batch
    times = batch.column("time").cast(pa.int64())
    low = since_ns if since_ns is not None else -(2**63)
    high = until_ns if until_ns is not None else 2**63 - 1
    return batch.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high)))
