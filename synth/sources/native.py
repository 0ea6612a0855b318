"""What the native readers share: DuckDB reading a block of JSON lines, and values judged once per distinct form.

A native reader hands DuckDB a block of whole lines (through an in-memory file) with a query that
returns every field as its JSON text, so nothing is coerced silently. Values with few distinct
forms are then judged once per distinct form by the exact parser's own field functions (`judge`,
`judge_many`, `judge_hashed`) and spread back over the rows by index: the decision is the exact
parser's, the per-row work is Arrow's. A form the exact parser rejects marks its rows `bad`: those
rows go, with their raw lines (`nonblank_lines`), to the exact parser, which names file, line and
field.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from synth.sources.interface import SourceStats
from synth.sources.parallel import BlockResult, merge_stats, prefetched

# DuckDB's own memory while it parses a block; the Arrow result of a block comes on top.
MEMORY_LIMIT_MB = 96

Errors = type[Exception] | tuple[type[Exception], ...]


class NativeUnavailable(Exception):
    """The native reader cannot take this block as a whole: the exact parser reads it."""


class NativeBlocks(ABC):
    """A native reader in two parts: DuckDB's (`read`, on the pipeline's thread) and the rest (`finish`)."""

    def __init__(self, threads: int) -> None:
        self._reader = BlockReader(threads)

    def close(self) -> None:
        """Release DuckDB and the block buffer."""
        self._reader.close()

    def parse(self, start: int, block: bytes) -> BlockResult:
        """One block of whole lines (the first is line `start`): native rows, and the exact parser's."""
        return self.finish(start, block, self.read(block))

    def read(self, block: bytes) -> pa.Table | NativeUnavailable:
        """DuckDB's columns of a block (this part runs beside the rest: DuckDB works without the GIL)."""
        try:
            return self._reader.read(self.query(block), block)
        except NativeUnavailable as e:
            return e

    @abstractmethod
    def query(self, block: bytes) -> str:
        """The query that reads this block."""

    @abstractmethod
    def finish(self, start: int, block: bytes, table: pa.Table | NativeUnavailable) -> BlockResult:
        """The rows of a block from DuckDB's columns, the exact parser reading what they cannot hold."""


def read_natively(native: NativeBlocks, blocks: Iterator[tuple[int, bytes]],
                  stats: SourceStats) -> Iterator[pa.RecordBatch]:
    """The batches of every block through the pipeline (`parse_blocks`), counts added to `stats`; the
    reader is closed however the iteration ends."""
    try:
        for result in parse_blocks(native, blocks):
            merge_stats(stats, result.stats)
            yield from result.batches
    finally:
        native.close()


def taken_stats(taken: pa.RecordBatch | None, records: int) -> SourceStats:
    """The counts of a block's natively taken rows: records read, flows and their window."""
    stats = SourceStats(records=records)
    if taken is not None:
        stats.flows += taken.num_rows
        times = pc.min_max(taken.column("time").cast(pa.int64()))
        stats.saw_time(times["min"].as_py(), times["max"].as_py())
    return stats


def parse_blocks(native: NativeBlocks, blocks: Iterator[tuple[int, bytes]]) -> Iterator[BlockResult]:
    """Every block's result, in order, from a pipeline of three threads: one reads (and decompresses and
    hashes) the input, one runs DuckDB on the next block, this one turns DuckDB's columns into rows and
    hands them on (to the store's writer). DuckDB parses a block of this size on one core, so the
    pipeline is what keeps both busy."""

    def parsed() -> Iterator[tuple[int, bytes, pa.Table | NativeUnavailable]]:
        for start, block in prefetched(blocks):
            yield start, block, native.read(block)

    for start, block, table in prefetched(parsed()):
        yield native.finish(start, block, table)


class BlockReader:
    """A DuckDB connection that runs a query over one block of lines at a time."""

    def __init__(self, threads: int, memory_mb: int = MEMORY_LIMIT_MB) -> None:
        self._connection = duckdb.connect(config={"threads": threads, "memory_limit": f"{memory_mb}MB"})
        self._buffer, self._path = _block_buffer()
        self._size = 0
        self._lock = threading.Lock()  # `read` runs on the pipeline's thread, `close` on the caller's
        self._closed = False

    def close(self) -> None:
        """Release the connection and the block buffer, stopping a query that still runs (Ctrl-C, an error)."""
        with contextlib.suppress(duckdb.Error):
            self._connection.interrupt()
        with self._lock:
            self._closed = True
            with contextlib.suppress(duckdb.Error):
                self._connection.close()
            with contextlib.suppress(OSError):
                os.close(self._buffer)
        if not self._path.startswith("/proc/"):
            Path(self._path).unlink(missing_ok=True)

    def read(self, query: str, block: bytes) -> pa.Table:
        """The query's rows over `block`; its one parameter is the file holding the block."""
        with self._lock:
            if self._closed:
                raise NativeUnavailable("closed")
            return self._read(query, block)

    def _read(self, query: str, block: bytes) -> pa.Table:
        os.pwrite(self._buffer, block, 0)
        if len(block) < self._size:  # the pages already there are written over, not given back and taken again
            os.ftruncate(self._buffer, len(block))
        self._size = len(block)
        try:
            return self._connection.sql(query, params=[self._path]).to_arrow_table()
        except duckdb.InterruptException:  # Ctrl-C while DuckDB ran: it is the user's, not a reason to fall back
            raise KeyboardInterrupt from None
        except duckdb.Error as e:
            raise NativeUnavailable(str(e)) from None


def _block_buffer() -> tuple[int, str]:
    """A file holding the block, and the path DuckDB opens it by: in memory where the system allows it."""
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        descriptor = os.memfd_create("synth-block", os.MFD_CLOEXEC)
        return descriptor, f"/proc/self/fd/{descriptor}"
    descriptor, path = tempfile.mkstemp(prefix="synth-block-", suffix=".json")  # pragma: no cover - not Linux
    return descriptor, path


@dataclass(frozen=True, slots=True)
class Judged:
    """Values decided once per distinct input; `rows` spreads them, `bad` marks rows for the exact parser."""

    values: list[Any]
    rows: pa.Array
    bad: pa.Array

    def column(self, kind: pa.DataType) -> pa.Array:
        """The decided values, one per row."""
        return pa.array(self.values, kind).take(self.rows)


def loads(text: str | None) -> Any:
    """A JSON text as the exact parser sees the value (absent: None)."""
    return None if text is None else orjson.loads(text)


def plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array of the column's storage type (DuckDB's JSON arrives as an extension type)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if isinstance(column.type, pa.ExtensionType):
        column = column.storage
    return column


def _decide_each(inputs: Sequence[Any], decide: Callable[..., Any], errors: Errors, *,
                 spread: bool) -> tuple[list[Any], list[bool]]:
    values: list[Any] = []
    bad: list[bool] = []
    for given in inputs:
        try:
            value = decide(*given) if spread else decide(given)
        except errors:
            values.append(None)
            bad.append(True)
        else:
            values.append(value)
            bad.append(False)
    return values, bad


def judge(column: pa.ChunkedArray | pa.Array, decide: Callable[[Any], Any], errors: Errors, *,
          json: bool = True) -> Judged:
    """`decide` once per distinct value of a column (JSON texts decoded first)."""
    encoded = pc.dictionary_encode(plain(column), null_encoding="encode")
    texts = encoded.dictionary.to_pylist()
    values, bad = _decide_each([loads(t) for t in texts] if json else texts, decide, errors, spread=False)
    return Judged(values, encoded.indices, pa.array(bad, pa.bool_()).take(encoded.indices))


def judge_many(columns: Sequence[pa.ChunkedArray | pa.Array], decide: Callable[..., Any], errors: Errors) -> Judged:
    """`decide` once per distinct combination of several columns' JSON texts."""
    parts = [pc.dictionary_encode(plain(c), null_encoding="encode") for c in columns]
    rows, combos = combinations([part.indices for part in parts])
    dictionaries = [part.dictionary.to_pylist() for part in parts]
    inputs = [tuple(loads(d[i]) for d, i in zip(dictionaries, combo, strict=True)) for combo in combos]
    values, bad = _decide_each(inputs, decide, errors, spread=True)
    return Judged(values, rows, pa.array(bad, pa.bool_()).take(rows))


def judge_hashed(hashes: pa.ChunkedArray | pa.Array, columns: Sequence[pa.ChunkedArray | pa.Array],
                 decide: Callable[..., Any], errors: Errors) -> Judged:
    """`decide` once per distinct hash, given the JSON texts of the hash's first row in `columns`.

    For long texts that repeat (endpoints, whole records): hashing them is left to the query, which
    does it on its own threads, so only the distinct ones are ever looked at here.
    """
    encoded = pc.dictionary_encode(plain(hashes))
    first = pc.index_in(encoded.dictionary, value_set=plain(hashes))
    texts = [plain(column).take(first).to_pylist() for column in columns]
    values, bad = _decide_each(list(zip(*texts, strict=True)), decide, errors, spread=True)
    return Judged(values, encoded.indices, pa.array(bad, pa.bool_()).take(encoded.indices))


def combinations(rows: Sequence[pa.Array]) -> tuple[pa.Array, list[tuple[int, ...]]]:
    """Row indices into the distinct combinations of several per-row indices, and those combinations."""
    sizes = [(pc.max(r).as_py() or 0) + 1 for r in rows]
    key = pc.cast(rows[0], pa.int64())
    for r, size in zip(rows[1:], sizes[1:], strict=True):
        key = pc.add(pc.multiply(key, size), pc.cast(r, pa.int64()))
    encoded = pc.dictionary_encode(key)
    combos = []
    for code in encoded.dictionary.to_pylist():
        parts = []
        for size in reversed(sizes):
            code, position = divmod(code, size)
            parts.append(position)
        combos.append(tuple(reversed(parts)))
    return encoded.indices, combos


def any_bad(*marks: pa.Array) -> pa.Array:
    """Rows marked bad by any of the marks."""
    result = marks[0]
    for mark in marks[1:]:
        result = pc.or_(result, mark)
    return result


def rows_of(mask: pa.Array) -> np.ndarray:
    """Row numbers where the mask is true."""
    return np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))


def nonblank_lines(block: bytes, expected: int) -> np.ndarray | None:
    """(line offset, start, end) of each non-blank line, or None when they are not the rows DuckDB read."""
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(block)]))
    trimmed = ends - (ends > starts) * (data[np.maximum(ends - 1, 0)] == 13)
    lines = np.flatnonzero(trimmed > starts)
    if len(lines) != expected:
        return None
    return np.stack([lines, starts[lines], ends[lines]], axis=1)
