"""The native path of the Hubble importer: blocks of JSON lines parsed by DuckDB into columns.

DuckDB's JSON reader turns a block of lines into columns on every core. Each field comes out as
its JSON text, so nothing is coerced silently (a number where a string belongs stays visibly a
number). Then no Python runs per flow:

- values with many distinct values (times, addresses, ports) are checked and converted with
  Arrow compute;
- values with few distinct values (enums, endpoints with their labels, services, policies, DNS,
  flags) are decoded once per distinct value by the exact parser's own field functions
  (`synth.sources.hubble.files`), and spread back over the rows by index.

So both paths share one decoding semantics by construction, and the parity test checks it. A row
the native path does not take as it is (a value of an unexpected shape, an event, a record that is
not an envelope) goes with its raw line to the exact parser, which accepts it or names file, line
and field; a block DuckDB rejects as a whole (malformed JSON, an object where a value belongs) is
read by the exact parser entirely.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.sources.columns import KIND_INDEX, SOURCE_INDEX, dictionary_column, label_map
from synth.sources.hubble import files
from synth.sources.hubble.enums import DIRECTION_ROWS, DROPPED_ROW, PROTOCOL_ROWS, SOCK_FLOW_TYPES, VERDICT_ROWS
from synth.sources.hubble.semantics import (
    MAX_PORT,
    SOCKET_EVENT,
    Endpoint,
    aggregate_count,
    drop_reason,
    http_method,
    http_path,
    node_name,
    reply_flag,
    service_name,
)
from synth.sources.native import (
    Judged,
    NativeBlocks,
    NativeUnavailable,
    any_bad,
    combinations,
    judge,
    judge_hashed,
    judge_many,
    loads,
    nonblank_lines,
    plain,
    rows_of,
    taken_stats,
)
from synth.sources.parallel import BlockResult, merge_stats
from synth.sources.reader import Record
from synth.store.schema import FLOW_SCHEMA

BAD = files.BadField

_PORTS = "STRUCT(source_port JSON, destination_port JSON, sourcePort JSON, destinationPort JSON, flags JSON)"
_FLOW_FIELDS = {
    **dict.fromkeys(("time", "verdict", "drop_reason_desc", "dropReasonDesc", "drop_reason", "dropReason"), "JSON"),
    "IP": "STRUCT(source JSON, destination JSON)",
    "l4": f"STRUCT(TCP {_PORTS}, UDP {_PORTS}, SCTP {_PORTS}, ICMPv4 JSON, ICMPv6 JSON, VRRP JSON, IGMP JSON)",
    **dict.fromkeys((
        "source", "destination", "Type", "node_name", "nodeName", "destination_names", "destinationNames", "l7",
        "reply", "is_reply", "isReply", "traffic_direction", "trafficDirection", "destination_service",
        "destinationService", "egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by",
        "egressAllowedBy", "ingressAllowedBy", "egressDeniedBy", "ingressDeniedBy", "aggregate",
    ), "JSON"),
}
_POLICY_COLUMNS = ("egress_allowed_by", "egressAllowedBy", "ingress_allowed_by", "ingressAllowedBy",
                   "egress_denied_by", "egressDeniedBy", "ingress_denied_by", "ingressDeniedBy")
_EVENTS = ("lost_events", "lostEvents", "node_status", "nodeStatus", "agent_event", "agentEvent",
           "debug_event", "debugEvent")
# `hubble observe -o json|jsonpb` envelopes: {"flow": {...}, "node_name": ..., "time": ...}
_FLOW_STRUCT = "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in _FLOW_FIELDS.items()) + ")"
_ENVELOPE_COLUMNS = {"flow": _FLOW_STRUCT, "node_name": "JSON", "nodeName": "JSON", "time": "JSON"}
# bare Flow objects, one per line (older producers, exporters): the flow's fields at the top
_BARE_COLUMNS = {**_FLOW_FIELDS, **dict.fromkeys(_EVENTS, "JSON"), "flow": "JSON"}
# a bare line is a flow when it has one of the fields the exact parser takes as the mark of one
_BARE_FLOW = ("(time IS NOT NULL OR verdict IS NOT NULL OR IP IS NOT NULL OR l4 IS NOT NULL"
              " OR source IS NOT NULL OR destination IS NOT NULL OR Type IS NOT NULL)")


def _select(envelope: bool) -> str:
    """The query of one block: one row per line, in order.

    Texts that are long and repeat (endpoints, L7) come with a hash, so their distinct values are
    found without hashing the texts themselves.
    """
    f = "flow." if envelope else ""

    def pick(snake: str, camel: str) -> str:  # the exact parser's `either`: the proto name, else lowerCamelCase
        return f"coalesce({f}{snake}, {f}{camel})"

    events = " OR ".join(f"{name} IS NOT NULL" for name in _EVENTS)
    # An envelope among bare flows (or the other way round) is the exact parser's.
    no_flow = "flow IS NULL" if envelope else f"flow IS NOT NULL OR ({events}) OR NOT {_BARE_FLOW}"
    envelope_time = "time" if envelope else "NULL::JSON"
    envelope_node = "coalesce(node_name, nodeName)" if envelope else "NULL::JSON"
    columns = _ENVELOPE_COLUMNS if envelope else _BARE_COLUMNS
    l4 = f"{f}l4"
    # An HTTP record's headers differ in every request: the rest of the record is what repeats.
    l7 = f"""CASE WHEN json_type({f}l7) = 'OBJECT' AND json_exists({f}l7, '$.http')
      THEN json_merge_patch({f}l7, '{{"http": null}}') ELSE {f}l7 END"""
    # Only constant text is put together here: no input ever reaches the query's text.
    return f"""
SELECT
  {no_flow} AS no_flow,
  {f}time AS flow_time, {envelope_time} AS envelope_time,
  {f}verdict AS verdict,
  {pick('drop_reason_desc', 'dropReasonDesc')} AS drop_desc,
  {pick('drop_reason', 'dropReason')} AS drop_number,
  {pick('traffic_direction', 'trafficDirection')} AS direction,
  {pick('is_reply', 'isReply')} AS is_reply,
  {f}reply AS reply,
  {f}Type AS type,
  {f}IP.source AS src_ip, {f}IP.destination AS dst_ip,
  ({l4}.TCP IS NOT NULL)::INT + ({l4}.UDP IS NOT NULL)::INT + ({l4}.SCTP IS NOT NULL)::INT
    + ({l4}.ICMPv4 IS NOT NULL)::INT + ({l4}.ICMPv6 IS NOT NULL)::INT
    + ({l4}.VRRP IS NOT NULL)::INT + ({l4}.IGMP IS NOT NULL)::INT AS l4_members,
  CASE WHEN {l4}.TCP IS NOT NULL THEN 'TCP' WHEN {l4}.UDP IS NOT NULL THEN 'UDP'
       WHEN {l4}.SCTP IS NOT NULL THEN 'SCTP' WHEN {l4}.ICMPv4 IS NOT NULL THEN 'ICMPv4'
       WHEN {l4}.ICMPv6 IS NOT NULL THEN 'ICMPv6' WHEN {l4}.VRRP IS NOT NULL THEN 'VRRP'
       WHEN {l4}.IGMP IS NOT NULL THEN 'IGMP' END AS protocol,
  coalesce({l4}.ICMPv4, {l4}.ICMPv6, {l4}.VRRP, {l4}.IGMP) AS portless_body,
  coalesce({l4}.TCP.source_port, {l4}.TCP.sourcePort, {l4}.UDP.source_port, {l4}.UDP.sourcePort,
           {l4}.SCTP.source_port, {l4}.SCTP.sourcePort) AS src_port,
  coalesce({l4}.TCP.destination_port, {l4}.TCP.destinationPort, {l4}.UDP.destination_port,
           {l4}.UDP.destinationPort, {l4}.SCTP.destination_port, {l4}.SCTP.destinationPort) AS dst_port,
  {l4}.TCP.flags AS tcp_flags,
  hash({f}source) AS src_hash, {f}source AS src,
  hash({f}destination) AS dst_hash, {f}destination AS dst,
  hash({l7}) AS l7_hash, {l7} AS l7,
  json_type({f}l7, '$.http') AS http_type,
  json_extract({f}l7, '$.http.method') AS http_method, json_extract({f}l7, '$.http.url') AS http_url,
  {pick('node_name', 'nodeName')} AS flow_node,
  {envelope_node} AS envelope_node,
  {pick('destination_names', 'destinationNames')} AS names,
  {pick('destination_service', 'destinationService')} AS service,
  {", ".join(f"{f}{name} AS {name}" for name in _POLICY_COLUMNS)},
  {f}aggregate AS aggregate
FROM read_json(?, format = 'newline_delimited', columns = {columns!r}, maximum_object_size = 8388608)
"""  # noqa: S608


_SELECTS = {envelope: _select(envelope) for envelope in (True, False)}
# A block of envelopes starts with one (the query for bare flows reads the other blocks).
_ENVELOPE_START = re.compile(rb'\s*\{\s*"flow"\s*:')

# RFC 3339 in UTC as Hubble prints it; anything else (offsets, leap seconds) goes to the exact parser.
_TIME_TEXT = r'^"\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d(\.\d{1,9})?Z"$'
_PORT_TEXT = r'^("\d{1,5}"|\d{1,5})$'
_PLAIN_STRING = r'^"[^"\\]*"$'
_TIME = FLOW_SCHEMA.field("time").type


class NativeHubbleBlocks(NativeBlocks):
    """Parses blocks of Hubble JSON lines with DuckDB; one instance per import (it holds the connection)."""

    def __init__(self, display: str, strict: bool, batch_rows: int, *, threads: int) -> None:
        super().__init__(threads)
        self.display = display
        self.strict = strict
        self.batch_rows = batch_rows
        self._endpoints: dict[str, Endpoint | Exception] = {}

    def query(self, block: bytes) -> str:
        """Envelopes or bare flows, by the block's first line."""
        return _SELECTS[_ENVELOPE_START.match(block) is not None]

    def finish(self, start: int, block: bytes, table: pa.Table | NativeUnavailable) -> BlockResult:
        """The rows of a block from DuckDB's columns (`read`), the exact parser reading what they cannot hold."""
        try:
            if isinstance(table, NativeUnavailable):
                raise table
            taken, others, socket_events = _Rows(table).convert(self)
        except NativeUnavailable:
            return files.parse_hubble_block(self.display, self.strict, self.batch_rows, start, block)
        stats = taken_stats(taken, table.num_rows)
        if socket_events:
            stats.other_events[SOCKET_EVENT] += socket_events
        batches = [] if taken is None else [taken]
        if len(others):
            lines = nonblank_lines(block, table.num_rows)
            if lines is None:
                return files.parse_hubble_block(self.display, self.strict, self.batch_rows, start, block)
            exact = files.HubbleParser(self.display, self.strict, self.batch_rows)
            records = [Record(start + int(lines[i, 0]), raw=block[lines[i, 1] : lines[i, 2]]) for i in others]
            batches.extend(exact.parse(records))
            exact.stats.records = 0  # counted above, with every row of the block
            merge_stats(stats, exact.stats)
        return files.finish_block(batches, stats, self.batch_rows)

    # ---------------------------------------------------------------------------------------- distinct values

    def endpoint(self, text: str | None, side: str) -> Endpoint:
        """One endpoint object (its JSON text), decoded by the exact parser once per distinct text."""
        key = f"{side}\x00{text}"
        found = self._endpoints.get(key)
        if found is None:
            try:
                found = files.endpoint_of(loads(text), side)
            except files.BadField as e:
                found = e
            if len(self._endpoints) > 65536:
                self._endpoints.clear()
            self._endpoints[key] = found
        if isinstance(found, Exception):
            raise found
        return found


class _Rows:
    """The columns DuckDB returned for one block, turned into FLOW_SCHEMA rows."""

    def __init__(self, table: pa.Table) -> None:
        self.n = table.num_rows
        self._columns = {name: plain(column) for name, column in zip(table.column_names, table.columns, strict=True)}

    def column(self, name: str) -> pa.Array:
        return self._columns[name]

    def convert(self, blocks: NativeHubbleBlocks) -> tuple[pa.RecordBatch | None, np.ndarray, int]:
        """(the rows taken natively as one batch, the rows the exact parser must read, socket events)."""
        n = self.n
        col = self.column
        bad = col("no_flow")

        # time: the flow's own, else the envelope's (`flow.time or envelope_time`)
        flow_time, envelope_time = col("flow_time"), col("envelope_time")
        own = pc.fill_null(pc.match_substring_regex(flow_time, _TIME_TEXT), False)
        from_envelope = pc.and_(pc.is_null(flow_time), pc.fill_null(pc.match_substring_regex(envelope_time, _TIME_TEXT),
                                                                     False))
        bad = pc.or_(bad, pc.invert(pc.or_(own, from_envelope)))
        time_text = pc.if_else(own, flow_time, envelope_time)

        verdict = judge(col("verdict"), lambda v: VERDICT_ROWS[files.enum_value(v, "flow.verdict")], BAD)
        drops = judge_many([col("verdict"), col("drop_desc"), col("drop_number")], _drop_reason, BAD)
        direction = judge(col("direction"), lambda v: DIRECTION_ROWS[files.enum_value(v, "flow.traffic_direction")],
                          BAD)
        socket = judge(col("type"), lambda v: v in SOCK_FLOW_TYPES, BAD)

        protocol_name = col("protocol")
        bad = pc.or_(bad, pc.greater(col("l4_members"), 1))
        portless_ok = pc.or_(pc.is_null(col("portless_body")),
                             pc.starts_with(pc.fill_null(col("portless_body"), ""), "{"))
        bad = pc.or_(bad, pc.invert(portless_ok))
        src_port, bad = _ports(col("src_port"), bad)
        dst_port, bad = _ports(col("dst_port"), bad)
        flags = judge(col("tcp_flags"), _syn_ack, BAD)

        l7 = judge_hashed(col("l7_hash"), [col("l7")], _l7, BAD)
        method, url, bad = _http(col("http_type"), col("http_method"), col("http_url"), bad)
        replies = judge_many([col("is_reply"), col("reply")], _reply_fields, BAD)
        src_ip, bad = _address(col("src_ip"), bad)
        dst_ip, bad = _address(col("dst_ip"), bad)
        src = judge_hashed(col("src_hash"), [col("src")], lambda t: blocks.endpoint(t, "source"), BAD)
        dst = judge_hashed(col("dst_hash"), [col("dst")], lambda t: blocks.endpoint(t, "destination"), BAD)
        names = judge(col("names"), lambda v: files.strings(v, "flow.destination_names"), BAD)
        service = judge(col("service"), _service, BAD)
        node = judge_many([col("flow_node"), col("envelope_node")], _node, BAD)
        policies = judge_many([col(name) for name in _POLICY_COLUMNS], _policies, BAD)
        count = judge(col("aggregate"), _count, BAD)
        bad = any_bad(bad, *(judged.bad for judged in (verdict, drops, direction, flags, l7, method, url, replies, src,
                                                        dst, names, service, node, policies, count)))

        is_socket = pc.and_(pc.invert(bad), socket.column(pa.bool_()))
        socket_events = pc.sum(is_socket).as_py() or 0
        keep = pc.invert(pc.or_(bad, is_socket))
        others = rows_of(bad)
        if not pc.any(keep).as_py():
            return None, others, socket_events

        protocol_rows = judge(protocol_name, lambda name: PROTOCOL_ROWS[name], BAD, json=False)
        reply = _reply_column(replies, l7, flags)
        dns_query = pa.array([v[1] if v else None for v in l7.values], pa.string()).take(l7.rows)
        dns_answers = pa.array([v[2] if v else () for v in l7.values], pa.list_(pa.string())).take(l7.rows)
        try:
            time_values = pc.cast(pc.utf8_slice_codeunits(pc.filter(time_text, keep), 1, -1), _TIME)
        except pa.ArrowInvalid as e:  # a date that does not exist (February 30): the exact parser names it
            raise NativeUnavailable(str(e)) from None

        columns: dict[str, pa.Array] = {
            "time": time_values,
            "count": pc.filter(count.column(pa.int64()), keep),
            "source": dictionary_column("source", pa.array(np.full(n, SOURCE_INDEX["hubble"], np.int32))).filter(keep),
            "verdict": _enum_column(verdict, "verdict").filter(keep),
            "drop_reason": pc.filter(drops.column(pa.string()), keep).dictionary_encode(),
            "direction": _enum_column(direction, "direction").filter(keep),
            "is_reply": pc.filter(reply, keep),
            "protocol": _enum_column(protocol_rows, "protocol").filter(keep),
            "src_port": pc.filter(src_port, keep),
            "dst_port": pc.filter(dst_port, keep),
            "dst_names": pc.filter(names.column(pa.list_(pa.string())), keep),
            "dns_query": pc.filter(dns_query, keep),
            "dns_answers": pc.filter(dns_answers, keep),
            "http_method": pc.filter(method.column(pa.string()), keep),
            "http_path": pc.filter(url.column(pa.string()), keep),
            "dst_service": pc.filter(service.column(pa.string()), keep),
            "dst_service_port": pa.nulls(n, pa.int32()).filter(keep),
            "node": pc.filter(node.column(pa.string()), keep),
            "policies": pc.filter(policies.column(pa.list_(pa.string())), keep),
            "flows_started": pa.nulls(n, pa.int64()).filter(keep),
            "flows_completed": pa.nulls(n, pa.int64()).filter(keep),
        }
        for side, judged, ips in (("src", src, src_ip), ("dst", dst, dst_ip)):
            columns[f"{side}_ip"] = pc.filter(ips, keep)
            columns.update(_endpoint_columns(side, judged, keep))
        batch = pa.RecordBatch.from_arrays([columns[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)
        return batch, others, socket_events


def _drop_reason(verdict: object, desc: object, number: object) -> str | None:
    verdict_row = VERDICT_ROWS[files.enum_value(verdict, "flow.verdict")]
    reason = files.enum_value(desc, "flow.drop_reason_desc")
    deprecated = files.uint(number, "flow.drop_reason") if verdict_row == DROPPED_ROW else 0
    return drop_reason(reason, verdict_row, deprecated)


def _reply_fields(is_reply: object, reply: object) -> tuple[bool | None, bool]:
    if is_reply is not None and type(is_reply) is not bool:
        raise files.BadField(f"field flow.is_reply: expected true or false, got {files.show(is_reply)}")
    return is_reply, reply is True


def _syn_ack(flags: object) -> tuple[bool, bool]:
    if not isinstance(flags, dict):
        return False, False
    return bool(flags.get("SYN")), bool(flags.get("ACK"))


def _l7(text: str | None) -> tuple[object, str | None, tuple[str, ...]]:
    """(type, DNS query, DNS answers) of an L7 record, as the exact parser reads them."""
    l7 = files.object_of(loads(text), "flow.l7")
    dns = files.object_of(l7.get("dns"), "flow.l7.dns") if l7 else {}
    query = files.optional_str(dns.get("query"), "flow.l7.dns.query") if dns else None
    answers = files.strings(dns.get("ips"), "flow.l7.dns.ips") if dns else ()
    return l7.get("type"), query, answers


def _http(kind: pa.Array, method: pa.Array, url: pa.Array, bad: pa.Array) -> tuple[Judged, Judged, pa.Array]:
    """The HTTP request's method and path (from the JSON texts of the record's fields, `kind` its
    JSON type); a record that is not an object is the exact parser's to name."""
    ok = pc.or_kleene(pc.is_null(kind), pc.is_in(kind, pa.array(["OBJECT", "NULL"])))
    return (
        judge(method, lambda v: http_method(files.optional_str(v, "flow.l7.http.method")), BAD),
        judge(url, lambda v: http_path(files.optional_str(v, "flow.l7.http.url")), BAD),
        pc.or_(bad, pc.invert(ok)),
    )


def _service(value: object) -> str | None:
    service = files.object_of(value, "flow.destination_service")
    namespace = files.optional_str(service.get("namespace"), "flow.destination_service.namespace") or ""
    name = files.optional_str(service.get("name"), "flow.destination_service.name") or ""
    return service_name(namespace, name)


def _node(flow_node: object, envelope_node: object) -> str | None:
    return node_name(files.optional_str(flow_node, "flow.node_name") or "",
                     files.optional_str(envelope_node, "node_name") or "")


def _policies(*values: object) -> list[str]:
    return files.policies_of(dict(zip(_POLICY_COLUMNS, values, strict=True)))


def _count(aggregate: object) -> int:
    if not isinstance(aggregate, dict):
        return 1
    return aggregate_count(*(files.uint(files.either(aggregate, snake, camel), f"flow.aggregate.{snake}")
                             for snake, camel in files.AGGREGATE_FIELDS))


def _ports(texts: pa.Array, bad: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Port numbers (0: none) from JSON texts; any other shape marks the row for the exact parser."""
    shaped = pc.fill_null(pc.match_substring_regex(texts, _PORT_TEXT), True)
    digits = pc.if_else(shaped, pc.replace_substring(texts, '"', ""), pa.scalar(None, pa.string()))
    numbers = pc.cast(digits, pa.int64())
    in_range = pc.fill_null(pc.less_equal(numbers, MAX_PORT), True)
    bad = pc.or_(bad, pc.invert(pc.and_(shaped, in_range)))
    ports = pc.if_else(pc.and_(in_range, pc.not_equal(numbers, 0)), numbers, pa.scalar(None, pa.int64()))
    return pc.cast(ports, pa.int32()), bad


def _address(texts: pa.Array, bad: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A string without escapes, unquoted ("" is none); any other shape marks the row."""
    shaped = pc.fill_null(pc.match_substring_regex(texts, _PLAIN_STRING), True)
    bad = pc.or_(bad, pc.invert(shaped))
    values = pc.utf8_slice_codeunits(pc.if_else(shaped, texts, pa.scalar(None, pa.string())), 1, -1)
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values), bad


def _reply_column(replies: Judged, l7: Judged, flags: Judged) -> pa.Array:
    rows, combos = combinations([replies.rows, l7.rows, flags.rows])
    values: list[bool | None] = []
    for a, b, c in combos:
        fields, record, syn_ack = replies.values[a], l7.values[b], flags.values[c]
        if fields is None or record is None or syn_ack is None:
            values.append(None)  # a row the exact parser reads
        else:
            values.append(reply_flag(fields[0], fields[1], record[0], syn_ack[0], syn_ack[1]))
    return pa.array(values, pa.bool_()).take(rows)


def _enum_column(judged: Judged, name: str) -> pa.DictionaryArray:
    return dictionary_column(name, judged.column(pa.int32()))


def _endpoint_columns(side: str, judged: Judged, keep: pa.Array) -> dict[str, pa.Array]:
    endpoints: list[Endpoint] = [e if e is not None else _NONE for e in judged.values]
    rows = pc.filter(judged.rows, keep)
    return {
        f"{side}_kind": dictionary_column("src_kind", pa.array([e.kind for e in endpoints], pa.int32()).take(rows)),
        f"{side}_namespace": pa.array([e.namespace for e in endpoints], pa.string()).take(rows),
        f"{side}_pod": pa.array([e.pod for e in endpoints], pa.string()).take(rows),
        f"{side}_workload": pa.array([e.workload for e in endpoints], pa.string()).take(rows),
        f"{side}_labels": label_map([e.labels for e in endpoints]).take(rows),
        f"{side}_ns_labels": label_map([e.ns_labels for e in endpoints]).take(rows),
    }


_NONE = Endpoint(KIND_INDEX["unknown"], None, None, None, (), ())
