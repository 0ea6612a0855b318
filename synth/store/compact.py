"""Compaction: identical flows within one interval become rows with a `count`.

Most stored bytes are repeats: the same two pods, the same port, the same verdict, minute after
minute. Within each interval (one minute by default) flows that agree on every column but `time`
and `count` (the ephemeral client port is dropped first: the source port of a request, the
destination port of a reply) collapse into at most two
rows: the first flow's time carrying the group's count less one, and the last flow's time carrying
one. So the sum of counts, and the first and last time of every group, are exactly those of the
raw flows: nothing that edges, generation or evidence use is lost.

The writer compacts each batch it stores; `synth.store.maintenance.compact_store` rewrites the files
of each closed hour into one larger, compacted file.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from synth.store.schema import FLOW_SCHEMA

MINUTE_NS = 60_000_000_000
_SEPARATOR = "\x1f"
_MAP_COLUMNS = ("src_labels", "src_ns_labels", "dst_labels", "dst_ns_labels")
_LIST_COLUMNS = ("dst_names", "dns_answers", "policies")


def _key(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integer codes for a column, equal exactly when the values are equal (null is its own code)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_map(kind):
        joined = pc.binary_join_element_wise(column.keys, column.items, "=")
        column = pc.binary_join(pa.ListArray.from_arrays(column.offsets, joined), _SEPARATOR)
    elif pa.types.is_list(kind):
        column = pc.binary_join(column, _SEPARATOR)
    elif pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
    return column.dictionary_encode(null_encoding="encode").indices


def compact_table(table: pa.Table, interval_ns: int = MINUTE_NS) -> pa.Table:
    """The same flows in fewer rows (see the module docstring)."""
    if table.num_rows <= 1:
        return table
    table = table.combine_chunks()
    # Ephemeral client ports: the source port of requests, the destination port of replies.
    reply = pc.fill_null(table.column("is_reply"), False)
    no_port = pa.scalar(None, pa.int32())
    src_port = pc.if_else(reply, table.column("src_port"), no_port)
    dst_port = pc.if_else(reply, no_port, table.column("dst_port"))
    table = table.set_column(table.schema.get_field_index("src_port"), "src_port", src_port)
    table = table.set_column(table.schema.get_field_index("dst_port"), "dst_port", dst_port)
    times = table.column("time").cast(pa.int64())
    keys: dict[str, pa.Array] = {"__bucket": pc.divide(times, interval_ns)}
    for field in FLOW_SCHEMA:
        if field.name not in ("time", "count"):
            keys[field.name] = _key(table.column(field.name))
    frame = pa.table({**keys, "__row": pa.array(range(table.num_rows), pa.int64()), "__time": times,
                      "__count": table.column("count")})
    grouped = frame.group_by(list(keys), use_threads=False).aggregate([
        ("__count", "sum"), ("__time", "min"), ("__time", "max"), ("__row", "min"), ("__row", "max"),
    ])
    if grouped.num_rows == table.num_rows:
        return table.cast(FLOW_SCHEMA)
    total = grouped.column("__count_sum")
    first_time, last_time = grouped.column("__time_min"), grouped.column("__time_max")
    single = pc.equal(first_time, last_time)
    # The first row carries everything but one flow; a group whose flows all share one time needs one row.
    first = table.take(grouped.column("__row_min"))
    first = first.set_column(first.schema.get_field_index("count"), "count",
                             pc.if_else(single, total, pc.subtract(total, 1)))
    first = first.set_column(first.schema.get_field_index("time"), "time",
                             first_time.cast(FLOW_SCHEMA.field("time").type))
    spread = pc.invert(single)
    last = table.take(pc.filter(grouped.column("__row_max"), spread))
    last = last.set_column(last.schema.get_field_index("count"), "count", pa.array([1] * last.num_rows, pa.int64()))
    last = last.set_column(last.schema.get_field_index("time"), "time",
                           pc.filter(last_time, spread).cast(FLOW_SCHEMA.field("time").type))
    return pa.concat_tables([first, last]).cast(FLOW_SCHEMA)
