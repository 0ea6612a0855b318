"""Import Calico flow data from files: one source, four formats, told apart by their first record.

| format          | what                                                                 | module            |
|-----------------|----------------------------------------------------------------------|-------------------|
| `flowlog`       | Calico Enterprise/Cloud `flows.log` JSON lines (rotated, `.gz`)       | `flowlog`         |
| `elasticsearch` | `tigera_secure_ee_flows*` exports: `_search`/scroll responses (one or | `flowlog`         |
|                 | many, NDJSON or concatenated), hits, or NDJSON of bare `_source` docs |                   |
| `goldmane`      | Goldmane emitter NDJSON (also protojson / grpcurl Flow output)        | `goldmane`        |
| `whisker`       | whisker-backend `{"items": [...]}` answers and `data:` SSE watches    | `goldmane`        |

`auto` (the default) looks at the keys of the first JSON object; `format=` forces one, and records
of another kind are then skipped with their keys named. A record nested in a response is skipped
as `file:line: hits.hits[3]: field dest_port: ...`, where `line` is where the response starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from synth.base.errors import InputError, UsageError
from synth.sources.calico.flowlog import FLOWLOG_KEYS, append_document, es_documents, is_es_response
from synth.sources.calico.goldmane import (
    append_goldmane,
    append_whisker,
    goldmane_flows,
    looks_like_goldmane,
    looks_like_whisker,
    whisker_items,
)
from synth.sources.calico.records import BadField
from synth.sources.columns import FlowColumns
from synth.sources.interface import FlowSource, SourceStats
from synth.sources.parallel import default_jobs
from synth.sources.reader import InputFile, Record

BATCH_ROWS = 65536
FORMATS = ("auto", "flowlog", "elasticsearch", "goldmane", "whisker")
#: formats whose files of one bare record per line the native reader takes (`calico.native`)
NATIVE_FORMATS = ("flowlog", "elasticsearch", "goldmane")
_APPEND: dict[str, Callable[[FlowColumns, dict[str, Any]], None]] = {
    "flowlog": append_document,
    "elasticsearch": append_document,
    "goldmane": append_goldmane,
    "whisker": append_whisker,
}
_WHAT = {
    "flowlog": "a Calico flows.log record",
    "elasticsearch": "a Calico flow log document or Elasticsearch response",
    "goldmane": "a Goldmane flow",
    "whisker": "a whisker-backend FlowResponse",
}


def detect_format(value: dict[str, Any]) -> str | None:
    """The format a record belongs to, from its keys; None when it is no Calico flow data."""
    if is_es_response(value):
        return "elasticsearch"
    if looks_like_goldmane(value):
        return "goldmane"
    if looks_like_whisker(value):
        return "whisker"
    if not FLOWLOG_KEYS.isdisjoint(value):
        return "elasticsearch" if "@timestamp" in value else "flowlog"
    return None


def _keys(value: dict[str, Any]) -> str:
    return ", ".join(sorted(value)[:6]) or "none"


class CalicoFileSource(FlowSource):
    """Flows from one Calico file (or stdin) in any supported format, streamed in batches."""

    name = "calico"

    def __init__(
        self, input_file: InputFile, *, strict: bool = False, format: str = "auto", batch_rows: int = BATCH_ROWS,
        block_size: int = 4 << 20, native: bool = True,
    ) -> None:
        super().__init__()
        if format not in FORMATS:
            raise UsageError(f"unknown Calico format {format!r}; known: {', '.join(FORMATS)}")
        self.input = input_file
        self.strict = strict
        self.format = None if format == "auto" else format
        self.batch_rows = batch_rows
        self.block_size = block_size
        self.native = native

    def facts(self) -> dict[str, object]:
        """Metadata for stored files: where the flows came from and in which format."""
        return {"source": self.name, "input": self.input.display, "format": self.format or "auto"}

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Parse records into FLOW_SCHEMA batches; skips go into `stats`.

        flows.log lines, bare Elasticsearch documents and Goldmane flows, one per line, are read in
        blocks by the native reader; every other shape of input by the exact parser as one stream.
        """
        blocks = self.input.ndjson_blocks(self.block_size) if self.native else None
        first = self.input.first_value() if blocks is not None else None
        fmt = self.format or (detect_format(first) if isinstance(first, dict) else None)
        bare_documents = isinstance(first, dict) and not is_es_response(first)
        if blocks is None or fmt not in NATIVE_FORMATS or not bare_documents:
            yield from self._parse(self.input.records(sse=True), self.stats)
            return
        self.format = fmt
        from synth.sources.calico.native import NativeCalicoBlocks  # noqa: PLC0415 - DuckDB only when it is used
        from synth.sources.native import read_natively  # noqa: PLC0415

        native = NativeCalicoBlocks(self._parse, fmt=fmt, threads=default_jobs(), batch_rows=self.batch_rows)
        yield from read_natively(native, blocks, self.stats)

    def _parse(self, records: Iterable[Record], stats: SourceStats) -> Iterator[pa.RecordBatch]:
        """The exact parser: records into batches, skips and counts into `stats`."""
        strict, display = self.strict, self.input.display
        cols = FlowColumns()
        for record in records:
            where = f"{display}:{record.line}"
            value = record.value
            if record.error or not isinstance(value, dict):
                stats.records += 1
                reason = record.error or f"expected a JSON object, got {type(value).__name__}"
                stats.skip(where, reason, strict=strict)
                continue
            if self.format is None:
                self.format = detect_format(value)
                if self.format is None:
                    raise InputError(
                        f"{where}: not Calico flow data (keys: {_keys(value)}); expected flows.log, "
                        "Elasticsearch, Goldmane or whisker-backend JSON (use --format to force one)"
                    )
            append = _APPEND[self.format]
            for prefix, doc in self._documents(value, record.line):
                stats.records += 1
                if isinstance(doc, BadField):
                    stats.skip(where, prefix + str(doc), strict=strict)
                    continue
                try:
                    append(cols, doc)  # type: ignore[arg-type]
                except BadField as e:
                    stats.skip(where, prefix + str(e), strict=strict)
                if len(cols) >= self.batch_rows:
                    yield _flush(cols, stats)
                    cols = FlowColumns()
        if len(cols):
            yield _flush(cols, stats)

    def _documents(self, value: dict[str, Any], line: int) -> Iterator[tuple[str, object]]:
        """The flow records inside one JSON value, with the prefix that locates each in it."""
        fmt = self.format
        if fmt in ("flowlog", "elasticsearch"):
            if fmt == "flowlog" and FLOWLOG_KEYS.isdisjoint(value) and not is_es_response(value):
                yield "", BadField(f"not {_WHAT[fmt]} (keys: {_keys(value)})")
                return
            for prefix, doc in es_documents(value, self.input.display, line):
                if isinstance(doc, dict) and FLOWLOG_KEYS.isdisjoint(doc):
                    doc = BadField(f"not {_WHAT[str(fmt)]} (keys: {_keys(doc)})")
                yield prefix, doc
        elif fmt == "goldmane":
            if not looks_like_goldmane(value):
                yield "", BadField(f"not {_WHAT[fmt]} (keys: {_keys(value)})")
                return
            yield from goldmane_flows(value)
        else:
            if not looks_like_whisker(value):
                yield "", BadField(f"not {_WHAT[str(fmt)]} (keys: {_keys(value)})")
                return
            yield from whisker_items(value)



def _flush(cols: FlowColumns, stats: SourceStats) -> pa.RecordBatch:
    stats.flows += len(cols)
    stats.saw_time(min(cols.time), max(cols.time))
    return cols.to_batch()
