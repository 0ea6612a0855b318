"""The native path of the Calico importer: `flows.log` lines, bare Elasticsearch documents and
Goldmane emitter NDJSON by DuckDB.

A flow record is mostly what repeats: the two endpoints, ports, protocol, action, reporter,
service, policies. Those fields are hashed by the query; each distinct combination is turned into
one row by the exact parser's own function (`append_document`, `append_goldmane`), and that row is
spread over every record that has it. What changes from record to record (the start time and the
counters) is checked and converted with Arrow compute. A record the native path does not take as it
is goes, with its raw line, to the exact parser, which accepts it or names file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synth.sources.calico.flowlog import FLOWLOG_KEYS, append_document
from synth.sources.calico.goldmane import append_goldmane
from synth.sources.calico.records import NS_PER_S, BadField
from synth.sources.columns import FlowColumns
from synth.sources.interface import SourceStats
from synth.sources.native import (
    NativeBlocks,
    NativeUnavailable,
    any_bad,
    judge_hashed,
    loads,
    nonblank_lines,
    plain,
    rows_of,
    taken_stats,
)
from synth.sources.parallel import BlockResult, merge_stats
from synth.sources.reader import Record, parsed_lines
from synth.store.schema import FLOW_SCHEMA

__all__ = ["NativeCalicoBlocks"]


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one format's records are read: the query, the fields decided once per distinct combination
    (`shared`, by the exact parser's `append`), the counters read per record (live, started, completed),
    and whether a record without live flows counts its started ones (Goldmane) before counting itself."""

    query: str
    shared: tuple[str, ...]
    counters: tuple[str, str, str]
    append: Callable[[FlowColumns, dict[str, Any]], None]
    started_count: bool


# Keys of wrappers (Elasticsearch hits and errors, Goldmane's FlowResult and FlowListResult) and of
# protojson spellings: a line with one is read by the exact parser.
_WRAPPERS = ("hits", "_source", "_scroll_id", "error", "flow", "flows", "startTime", "sourceLabels", "destLabels",
             "numConnectionsLive", "numConnectionsStarted", "numConnectionsCompleted")


def _query(counters: tuple[str, ...], shared: tuple[str, ...], not_a_record: str) -> str:
    columns = dict.fromkeys(("start_time", *counters, *shared, *_WRAPPERS), "JSON")
    wrapped = " OR ".join(f"{key} IS NOT NULL" for key in _WRAPPERS)
    return f"""
SELECT
  start_time, {", ".join(counters)},
  ({wrapped}) OR ({not_a_record}) AS not_a_record,
  hash({", ".join(shared)}) AS shared_hash,
  {", ".join(shared)}
FROM read_json(?, format = 'newline_delimited', columns = {columns!r}, maximum_object_size = 8388608)
"""  # noqa: S608 - only constant text is put together: no input reaches the query's text


_FLOWLOG_COUNTERS = ("num_flows", "num_flows_started", "num_flows_completed")
_FLOWLOG_SHARED = (
    "action", "reporter", "proto", "source_port", "dest_port", "dest_domains", "dest_service_namespace",
    "dest_service_name", "dest_service_port_num", "host", "policies",
    *(f"{side}_{field}" for side in ("source", "dest")
      for field in ("type", "name", "name_aggr", "namespace", "ip", "labels")),
)
_GOLDMANE_COUNTERS = ("num_connections_live", "num_connections_started", "num_connections_completed")
_GOLDMANE_SHARED = ("Key", "source_labels", "dest_labels")
_FLOWLOG = _Layout(
    _query(_FLOWLOG_COUNTERS, _FLOWLOG_SHARED, " AND ".join(f"{key} IS NULL" for key in sorted(FLOWLOG_KEYS))),
    _FLOWLOG_SHARED, _FLOWLOG_COUNTERS, append_document, started_count=False)
_LAYOUTS = {
    "flowlog": _FLOWLOG,
    "elasticsearch": _FLOWLOG,  # bare documents, one per line, are flow log records
    "goldmane": _Layout(_query(_GOLDMANE_COUNTERS, _GOLDMANE_SHARED, "Key IS NULL"),
                        _GOLDMANE_SHARED, _GOLDMANE_COUNTERS, append_goldmane, started_count=True),
}

_UNIX_SECONDS = r'^([1-9]\d{0,9}|"\d{1,10}")$'
_COUNT = r'^(\d{1,18}|"\d{1,18}")$'
_TIME = FLOW_SCHEMA.field("time").type


class NativeCalicoBlocks(NativeBlocks):
    """Parses blocks of records of one format (flowlog, elasticsearch, goldmane) with DuckDB; one per import."""

    def __init__(self, exact: Callable[[Iterable[Record], SourceStats], Iterator[pa.RecordBatch]], *,
                 fmt: str, threads: int, batch_rows: int) -> None:
        super().__init__(threads)
        self._exact = exact
        self._layout = _LAYOUTS[fmt]
        self._batch_rows = batch_rows

    def query(self, block: bytes) -> str:
        """One query for every block of the format."""
        return self._layout.query

    def finish(self, start: int, block: bytes, table: pa.Table | NativeUnavailable) -> BlockResult:
        """The rows of a block from DuckDB's columns (`read`), the exact parser reading what they cannot hold."""
        try:
            if isinstance(table, NativeUnavailable):
                raise table
            taken, others = _convert(table, self._layout)
        except NativeUnavailable:
            return self._run_exact(list(parsed_lines(start, block)))
        stats = taken_stats(taken, table.num_rows - len(others))
        batches = [] if taken is None else [taken]
        if len(others):
            lines = nonblank_lines(block, table.num_rows)
            if lines is None:
                return self._run_exact(list(parsed_lines(start, block)))
            records = [next(parsed_lines(start + int(number), block[begin : end + 1]))
                       for number, begin, end in lines[others]]
            exact = self._run_exact(records)
            batches.extend(exact.batches)
            merge_stats(stats, exact.stats)
        if not batches:
            return BlockResult([], stats)
        table = pa.Table.from_batches(batches, FLOW_SCHEMA)
        return BlockResult(table.to_batches(max_chunksize=self._batch_rows), stats)

    def _run_exact(self, records: list[Record]) -> BlockResult:
        stats = SourceStats()
        return BlockResult(list(self._exact(records, stats)), stats)


def _convert(table: pa.Table, layout: _Layout) -> tuple[pa.RecordBatch | None, Any]:
    """(the records taken natively as one batch, the rows the exact parser must read)."""
    col: Callable[[str], pa.Array] = lambda name: plain(table.column(name))  # noqa: E731

    def template(*texts: str | None) -> pa.RecordBatch:
        """The row of one distinct combination of shared fields, by the exact parser (time and counts come later)."""
        cols = FlowColumns()
        layout.append(cols, {**{name: loads(text) for name, text in zip(layout.shared, texts, strict=True)},
                             "start_time": 1})
        return cols.to_batch()

    shared = judge_hashed(col("shared_hash"), [col(name) for name in layout.shared], template, BadField)
    seconds, time_bad = _integers(col("start_time"), _UNIX_SECONDS, positive=True)
    (live, live_bad), (started, started_bad), (completed, completed_bad) = (
        _integers(col(name), _COUNT) for name in layout.counters
    )
    bad = any_bad(col("not_a_record"), shared.bad, time_bad, live_bad, started_bad, completed_bad)
    others = rows_of(bad)
    keep = pc.invert(bad)
    if len(others) == table.num_rows:
        return None, others
    templates = pa.Table.from_batches([v for v in shared.values if v is not None] or [], FLOW_SCHEMA)
    positions = _template_positions(shared.values)
    rows = templates.take(pc.take(positions, pc.filter(shared.rows, keep)))
    one = pa.scalar(1, pa.int64())
    # The exact parsers' counts: flows.log `num_flows if positive else 1`, Goldmane `live or started or 1`.
    count = _positive_or(live, _positive_or(started, one) if layout.started_count else one)
    replace = {
        "time": pc.cast(pc.multiply(pc.filter(seconds, keep), NS_PER_S), _TIME),
        "count": pc.filter(count, keep),
        "flows_started": pc.filter(started, keep),
        "flows_completed": pc.filter(completed, keep),
    }
    for name, values in replace.items():
        rows = rows.set_column(rows.schema.get_field_index(name), FLOW_SCHEMA.field(name), values)
    return rows.combine_chunks().to_batches()[0], others


def _positive_or(values: pa.Array, otherwise: pa.Array | pa.Scalar) -> pa.Array:
    """`values` where positive, `otherwise` where zero or null."""
    return pc.if_else(pc.fill_null(pc.greater(values, 0), False), values, otherwise)


def _template_positions(values: list[Any]) -> pa.Array:
    """For each distinct combination, its row among the templates (the bad ones have none)."""
    positions, position = [], 0
    for value in values:
        positions.append(position if value is not None else 0)
        position += value is not None
    return pa.array(positions, pa.int64())


def _integers(texts: pa.Array, shape: str, *, positive: bool = False) -> tuple[pa.Array, pa.Array]:
    """Integers written as JSON numbers or decimal strings; another shape (or 0 where it must be positive) is bad."""
    shaped = pc.fill_null(pc.match_substring_regex(texts, shape), True)
    numbers = pc.cast(pc.replace_substring(pc.if_else(shaped, texts, pa.scalar(None, pa.string())), '"', ""),
                      pa.int64())
    bad = pc.invert(shaped)
    if positive:
        bad = pc.or_(bad, pc.fill_null(pc.less_equal(numbers, 0), True))
    return numbers, bad
