"""The native path of the Calico importer: `flows.log` lines (and bare Elasticsearch documents) by DuckDB.

A flow log record is mostly what repeats: the two endpoints, ports, protocol, action, reporter,
service, policies. Those fields are hashed by the query; each distinct combination is turned into
one row by the exact parser's own `append_document`, and that row is spread over every record
that has it. What changes from record to record (the start time and the three counters) is
checked and converted with Arrow compute. A record the native path does not take as it is goes,
with its raw line, to the exact parser, which accepts it or names file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synth.sources.calico.flowlog import FLOWLOG_KEYS, append_document
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

# What varies per record; everything else a record has is decided once per distinct combination.
_COUNTERS = ("num_flows", "num_flows_started", "num_flows_completed")
_SHARED = (
    "action", "reporter", "proto", "source_port", "dest_port", "dest_domains", "dest_service_namespace",
    "dest_service_name", "dest_service_port_num", "host", "policies",
    *(f"{side}_{field}" for side in ("source", "dest")
      for field in ("type", "name", "name_aggr", "namespace", "ip", "labels")),
)
# Keys of Elasticsearch wrappers and error answers: such a line is read by the exact parser.
_WRAPPERS = ("hits", "_source", "_scroll_id", "error")
_COLUMNS = dict.fromkeys(("start_time", *_COUNTERS, *_SHARED, *_WRAPPERS), "JSON")
_QUERY = f"""
SELECT
  start_time, {", ".join(_COUNTERS)},
  ({" OR ".join(f"{key} IS NOT NULL" for key in _WRAPPERS)})
    OR ({" AND ".join(f"{key} IS NULL" for key in sorted(FLOWLOG_KEYS))}) AS not_a_record,
  hash({", ".join(_SHARED)}) AS shared_hash,
  {", ".join(_SHARED)}
FROM read_json(?, format = 'newline_delimited', columns = {_COLUMNS!r}, maximum_object_size = 8388608)
"""  # noqa: S608 - only constant text is put together: no input reaches the query's text

_UNIX_SECONDS = r'^([1-9]\d{0,9}|"\d{1,10}")$'
_COUNT = r'^(\d{1,18}|"\d{1,18}")$'
_TIME = FLOW_SCHEMA.field("time").type


class NativeCalicoBlocks(NativeBlocks):
    """Parses blocks of flows.log lines with DuckDB; one instance per import."""

    def __init__(self, exact: Callable[[Iterable[Record], SourceStats], Iterator[pa.RecordBatch]], *,
                 threads: int, batch_rows: int) -> None:
        super().__init__(threads)
        self._exact = exact
        self._batch_rows = batch_rows

    def query(self, block: bytes) -> str:
        """One query for every block of flow log lines."""
        return _QUERY

    def finish(self, start: int, block: bytes, table: pa.Table | NativeUnavailable) -> BlockResult:
        """The rows of a block from DuckDB's columns (`read`), the exact parser reading what they cannot hold."""
        try:
            if isinstance(table, NativeUnavailable):
                raise table
            taken, others = _convert(table)
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


def _convert(table: pa.Table) -> tuple[pa.RecordBatch | None, Any]:
    """(the records taken natively as one batch, the rows the exact parser must read)."""
    col: Callable[[str], pa.Array] = lambda name: plain(table.column(name))  # noqa: E731
    shared = judge_hashed(col("shared_hash"), [col(name) for name in _SHARED], _template, BadField)
    seconds, time_bad = _integers(col("start_time"), _UNIX_SECONDS, positive=True)
    flows, flows_bad = _integers(col("num_flows"), _COUNT)
    started, started_bad = _integers(col("num_flows_started"), _COUNT)
    completed, completed_bad = _integers(col("num_flows_completed"), _COUNT)
    bad = any_bad(col("not_a_record"), shared.bad, time_bad, flows_bad, started_bad, completed_bad)
    others = rows_of(bad)
    keep = pc.invert(bad)
    if len(others) == table.num_rows:
        return None, others
    templates = pa.Table.from_batches([v for v in shared.values if v is not None] or [], FLOW_SCHEMA)
    positions = _template_positions(shared.values)
    rows = templates.take(pc.take(positions, pc.filter(shared.rows, keep)))
    replace = {
        "time": pc.cast(pc.multiply(pc.filter(seconds, keep), NS_PER_S), _TIME),
        "count": pc.filter(pc.if_else(pc.fill_null(pc.greater(flows, 0), False), flows, 1), keep),
        "flows_started": pc.filter(started, keep),
        "flows_completed": pc.filter(completed, keep),
    }
    for name, values in replace.items():
        rows = rows.set_column(rows.schema.get_field_index(name), FLOW_SCHEMA.field(name), values)
    return rows.combine_chunks().to_batches()[0], others


def _template(*texts: str | None) -> pa.RecordBatch:
    """The row of one distinct combination of shared fields, by the exact parser (time and counts come later)."""
    doc = {name: loads(text) for name, text in zip(_SHARED, texts, strict=True)}
    cols = FlowColumns()
    append_document(cols, {**doc, "start_time": 1})
    return cols.to_batch()


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
