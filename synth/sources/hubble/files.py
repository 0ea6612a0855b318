"""Import Hubble flows from files: `hubble observe -o json|jsonpb`, legacy bare flows, exporter files.

Accepts `{"flow": ...}` envelopes and bare Flow objects, proto and lowerCamelCase field names,
enums by name or number, 64-bit integers as strings, the deprecated `reply` beside `is_reply`.
Unknown fields and `extensions` are ignored. `lost_events` and `node_status` lines are counted,
never stored as flows. A malformed record is skipped with `file:line: field ...: reason`.

This module is the exact parser and the source that uses it; `hubble.native` reads most lines
natively and hands this parser whatever it does not take as it is, and its field functions
(`endpoint_of`, `enum_value`, `strings`, ...) are the ones the native reader decides with.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from synth.sources.calico.files import detect_format as detect_calico_format
from synth.sources.columns import SOURCE_INDEX, FlowColumns
from synth.sources.hubble.enums import (
    DIRECTION_ROWS,
    DROPPED_ROW,
    PORTED_PROTOCOLS,
    PROTOCOL_ROWS,
    SOCK_FLOW_TYPES,
    VERDICT_ROWS,
)
from synth.sources.hubble.fast import Endpoints, FastColumns
from synth.sources.hubble.fast import append as fast_append
from synth.sources.hubble.fast import decode as fast_decode
from synth.sources.hubble.semantics import (
    LOST_EVENTS,
    MAX_PORT,
    POLICY_LISTS,
    SOCKET_EVENT,
    Endpoint,
    ReplyTracker,
    aggregate_count,
    count_lost_events,
    drop_reason,
    endpoint,
    http_method,
    http_path,
    node_name,
    policy_entry,
    port,
    reply_flag,
    service_name,
)
from synth.sources.interface import FlowSource, SourceStats
from synth.sources.parallel import BlockResult, default_jobs, merge_stats
from synth.sources.reader import InputFile, Record, short_error
from synth.store.schema import FLOW_SCHEMA

BATCH_ROWS = 65536
_FLOW_KEYS = frozenset({"time", "verdict", "IP", "l4", "source", "destination", "Type", "event_type", "eventType"})
_EVENT_KEYS = (
    ("lost_events", "lostEvents"),
    ("node_status", "nodeStatus"),
    ("agent_event", "agentEvent"),
    ("debug_event", "debugEvent"),
)
_minute_base: dict[str, int] = {}
_second_base: dict[str, int] = {}


class BadField(ValueError):
    """A field of a record has the wrong type or value; the message names the field."""


def parse_time_ns(text: object, field: str = "time") -> int:
    """RFC 3339 (`2021-06-16T16:52:13.136834446Z`) to integer nanoseconds since the epoch."""
    if not isinstance(text, str):
        raise BadField(f"field {field}: expected an RFC 3339 string, got {show(text)}")
    # The common shape, 2021-06-16T16:52:13.136834446Z: one cache look-up per second, one int().
    if len(text) == 30 and text[19] == ".":
        second = _second_base.get(text[:19])
        fraction = text[20:29]
        if second is not None and fraction.isdigit():
            return second + int(fraction)
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and text[16] == ":":
        base = _minute_base.get(text[:16])
        if base is None:
            base = _minute(text[:16], field, text)
        seconds = text[17:19]
        fraction = text[20:-1] if text[19] == "." else ""
        if seconds.isdigit() and (fraction.isdigit() or (not fraction and text[19] == "Z")) and len(fraction) <= 9:
            whole = (base + int(seconds)) * 1_000_000_000
            if len(_second_base) > 100_000:
                _second_base.clear()
            _second_base[text[:19]] = whole
            return whole + (int(fraction.ljust(9, "0")) if fraction else 0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadField(f"field {field}: not an RFC 3339 timestamp: {show(text)}") from None
    if moment.tzinfo is None:
        raise BadField(f"field {field}: timestamp without a time zone: {show(text)}")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _minute(prefix: str, field: str, text: str) -> int:
    try:
        moment = datetime.strptime(prefix, "%Y-%m-%dT%H:%M")
    except ValueError:
        raise BadField(f"field {field}: not an RFC 3339 timestamp: {show(text)}") from None
    base = calendar.timegm(moment.timetuple())
    if len(_minute_base) > 100_000:
        _minute_base.clear()
    _minute_base[prefix] = base
    return base


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def either(d: dict[str, Any], snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def port_number(value: object, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_PORT:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) <= MAX_PORT:
        return int(value)
    raise BadField(f"field {field}: expected a port number, got {show(value)}")


def uint(value: object, field: str) -> int:
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise BadField(f"field {field}: expected an unsigned integer, got {show(value)}")


def strings(value: object, field: str) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BadField(f"field {field}: expected a list of strings, got {show(value)}")


def object_of(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise BadField(f"field {field}: expected an object, got {show(value)}")


def optional_str(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise BadField(f"field {field}: expected a string, got {show(value)}")


def enum_value(value: object, field: str) -> str | int | None:
    if value is None or isinstance(value, str) or type(value) is int:
        return value
    raise BadField(f"field {field}: expected an enum name or number, got {show(value)}")


def endpoint_of(value: object, side: str) -> Endpoint:
    ep = object_of(value, f"flow.{side}")
    labels = strings(ep.get("labels"), f"flow.{side}.labels")
    identity = uint(ep.get("identity"), f"flow.{side}.identity")
    namespace = optional_str(ep.get("namespace"), f"flow.{side}.namespace") or ""
    pod = optional_str(either(ep, "pod_name", "podName"), f"flow.{side}.pod_name") or ""
    workloads = ep.get("workloads")
    if workloads is not None and not (isinstance(workloads, list) and all(isinstance(w, dict) for w in workloads)):
        raise BadField(f"field flow.{side}.workloads: expected a list of objects, got {show(workloads)}")
    owner = workloads[0] if workloads else {}
    owner_kind = optional_str(owner.get("kind"), f"flow.{side}.workloads.kind") or ""
    owner_name = optional_str(owner.get("name"), f"flow.{side}.workloads.name") or ""
    return endpoint(identity, namespace, pod, labels, owner_kind, owner_name)


def _protocol(l4: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The Layer4 oneof member and, for the protocols with ports, its body."""
    for key, body in l4.items():
        if key in PROTOCOL_ROWS or key in ("VRRP", "IGMP"):
            fields = object_of(body, f"flow.l4.{key}")
            return key, fields if key in PORTED_PROTOCOLS else {}
    return "unknown", {}


def _tcp_flags(protocol: str, ports: dict[str, Any]) -> tuple[bool, bool]:
    flags = ports.get("flags") if protocol == "TCP" else None
    if not isinstance(flags, dict):
        return False, False
    return bool(flags.get("SYN")), bool(flags.get("ACK"))


def _append_flow(  # noqa: PLR0915 - validates every field before touching a column: one pass, one place
    cols: FlowColumns, flow: dict[str, Any], node: object, envelope_time: object
) -> None:
    """Validate one Flow object and append it. Raises BadField before touching any column."""
    time_value = flow.get("time") or envelope_time
    if time_value is None:
        raise BadField("field time: missing (neither the flow nor its envelope has a time)")
    time_ns = parse_time_ns(time_value, "flow.time")
    if flow.get("Type") in SOCK_FLOW_TYPES:
        raise _NotAFlow(SOCKET_EVENT)
    verdict = VERDICT_ROWS[enum_value(flow.get("verdict"), "flow.verdict")]
    desc = enum_value(either(flow, "drop_reason_desc", "dropReasonDesc"), "flow.drop_reason_desc")
    # The deprecated numeric reason is read (and checked) only where drop_reason() may use it: drops.
    deprecated = uint(either(flow, "drop_reason", "dropReason"), "flow.drop_reason") if verdict == DROPPED_ROW else 0
    direction_value = either(flow, "traffic_direction", "trafficDirection")
    direction = DIRECTION_ROWS[enum_value(direction_value, "flow.traffic_direction")]
    is_reply = either(flow, "is_reply", "isReply")
    if is_reply is not None and type(is_reply) is not bool:
        raise BadField(f"field flow.is_reply: expected true or false, got {show(is_reply)}")
    l4 = object_of(flow.get("l4"), "flow.l4")
    protocol, ports = _protocol(l4)
    src_port = port_number(either(ports, "source_port", "sourcePort"), f"flow.l4.{protocol}.source_port")
    dst_port = port_number(either(ports, "destination_port", "destinationPort"), f"flow.l4.{protocol}.destination_port")
    l7 = object_of(flow.get("l7"), "flow.l7")
    dns = object_of(l7.get("dns"), "flow.l7.dns") if l7 else {}
    http = object_of(l7.get("http"), "flow.l7.http") if l7 else {}
    ip = object_of(flow.get("IP"), "flow.IP")
    src_ip = optional_str(ip.get("source"), "flow.IP.source")
    dst_ip = optional_str(ip.get("destination"), "flow.IP.destination")
    src = endpoint_of(flow.get("source"), "source")
    dst = endpoint_of(flow.get("destination"), "destination")
    names = strings(either(flow, "destination_names", "destinationNames"), "flow.destination_names")
    service = object_of(either(flow, "destination_service", "destinationService"), "flow.destination_service")
    service_ns = optional_str(service.get("namespace"), "flow.destination_service.namespace") or ""
    service_nm = optional_str(service.get("name"), "flow.destination_service.name") or ""
    flow_node = optional_str(either(flow, "node_name", "nodeName"), "flow.node_name") or ""
    envelope_node = optional_str(node, "node_name") or ""
    policies = policies_of(flow)
    aggregate = flow.get("aggregate")
    count = 1
    if isinstance(aggregate, dict):
        count = aggregate_count(*(uint(either(aggregate, snake, camel), f"flow.aggregate.{snake}")
                                  for snake, camel in AGGREGATE_FIELDS))
    dns_query = optional_str(dns.get("query"), "flow.l7.dns.query") if dns else None
    dns_answers = strings(dns.get("ips"), "flow.l7.dns.ips") if dns else ()
    method = optional_str(http.get("method"), "flow.l7.http.method") if http else None
    url = optional_str(http.get("url"), "flow.l7.http.url") if http else None
    syn, ack = _tcp_flags(protocol, ports)

    cols.time.append(time_ns)
    cols.count.append(count)
    cols.source.append(SOURCE_INDEX["hubble"])
    cols.verdict.append(verdict)
    cols.drop_reason.append(drop_reason(desc, verdict, deprecated))
    cols.direction.append(direction)
    cols.is_reply.append(reply_flag(is_reply, flow.get("reply") is True, l7.get("type"), syn, ack))
    cols.protocol.append(PROTOCOL_ROWS[protocol])
    cols.src_port.append(port(src_port))
    cols.dst_port.append(port(dst_port))
    for side, ep, address in (("src", src, src_ip), ("dst", dst, dst_ip)):
        getattr(cols, f"{side}_ip").append(address)
        getattr(cols, f"{side}_kind").append(ep.kind)
        getattr(cols, f"{side}_namespace").append(ep.namespace)
        getattr(cols, f"{side}_pod").append(ep.pod)
        getattr(cols, f"{side}_workload").append(ep.workload)
        getattr(cols, f"{side}_labels").append(ep.labels)
        getattr(cols, f"{side}_ns_labels").append(ep.ns_labels)
    cols.dst_names.append(names)
    cols.dns_query.append(dns_query)
    cols.dns_answers.append(dns_answers)
    cols.http_method.append(http_method(method))
    cols.http_path.append(http_path(url))
    cols.dst_service.append(service_name(service_ns, service_nm))
    cols.dst_service_port.append(None)
    cols.node.append(node_name(flow_node, envelope_node))
    cols.policies.append(policies)
    cols.flows_started.append(None)
    cols.flows_completed.append(None)


AGGREGATE_FIELDS = (
    ("ingress_flow_count", "ingressFlowCount"),
    ("egress_flow_count", "egressFlowCount"),
    ("unknown_direction_flow_count", "unknownDirectionFlowCount"),
)


def policies_of(flow: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for snake, camel, prefix in POLICY_LISTS:
        entries = either(flow, snake, camel)
        if not entries:
            continue
        if not isinstance(entries, list):
            raise BadField(f"field flow.{snake}: expected a list of policies, got {show(entries)}")
        for entry in entries:
            if isinstance(entry, dict):
                kind, namespace, name = (
                    optional_str(entry.get(key), f"flow.{snake}.{key}") or "" for key in ("kind", "namespace", "name")
                )
                found.append(policy_entry(prefix, kind, namespace, name))
    return found


class _NotAFlow(Exception):
    """A record that is a valid event but not a flow synth stores (counted, not skipped)."""


def _event_kind(record: dict[str, Any]) -> str | None:
    for snake, camel in _EVENT_KEYS:
        if snake in record or camel in record:
            return snake
    return None


def _lost_count(event: object) -> int:
    if not isinstance(event, dict):
        raise BadField(f"field lost_events: expected an object, got {show(event)}")
    return uint(either(event, "num_events_lost", "numEventsLost"), "lost_events.num_events_lost")


class HubbleFileSource(FlowSource):
    """Flows from one Hubble JSON file (or stdin), streamed in batches.

    A file of one JSON value per line is read in blocks of whole lines: DuckDB parses each block
    on every core (`native`), while the next block is read, decompressed and hashed; rows or
    blocks it cannot take as they are go to the exact parser. Replies whose producer did not mark
    them are told apart within each block. Other framings (arrays, pretty-printed objects) are
    parsed by the exact parser as one stream; `native=False` reads every block with it (the
    parity test compares the two).
    """

    name = "hubble"

    def __init__(self, input_file: InputFile, *, strict: bool = False, batch_rows: int = BATCH_ROWS,
                 jobs: int | None = None, block_size: int = 4 << 20, native: bool = True) -> None:
        super().__init__()
        self.native = native
        self.input = input_file
        self.block_size = block_size
        self.strict = strict
        self.batch_rows = batch_rows
        self.jobs = default_jobs() if jobs is None else jobs

    def facts(self) -> dict[str, object]:
        """Metadata for stored files: where the flows came from."""
        return {"source": self.name, "input": self.input.display}

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Parse records into FLOW_SCHEMA batches; skips and events go into `stats`."""
        blocks = self.input.ndjson_blocks(self.block_size)
        if blocks is None:
            parser = HubbleParser(self.input.display, self.strict, self.batch_rows)
            parser.stats = self.stats
            replies = ReplyTracker()
            for batch in parser.parse(self.input.records(raw=True)):
                yield from replies.resolve_table(pa.Table.from_batches([batch])).to_batches()
            return
        if not self.native:
            for start, block in blocks:
                result = parse_hubble_block(self.input.display, self.strict, self.batch_rows, start, block)
                merge_stats(self.stats, result.stats)
                yield from result.batches
            return
        from synth.sources.hubble.native import NativeHubbleBlocks  # noqa: PLC0415 - it reads this module's checks
        from synth.sources.native import read_natively  # noqa: PLC0415 - DuckDB only when it is used

        native = NativeHubbleBlocks(self.input.display, self.strict, self.batch_rows, threads=self.jobs)
        yield from read_natively(native, blocks, self.stats)


_parsers: dict[tuple[str, bool, int], HubbleParser] = {}


def finish_block(batches: list[pa.RecordBatch], stats: SourceStats, batch_rows: int) -> BlockResult:
    """A block's batches as one, replies whose producer did not mark them told apart within the block.

    The block is the unit (not the process or the batch), so the rows never depend on how the
    input was split between processes or paths.
    """
    if not batches:
        return BlockResult([], stats)
    table = ReplyTracker().resolve_table(pa.Table.from_batches(batches, FLOW_SCHEMA))
    return BlockResult(table.to_batches(max_chunksize=batch_rows), stats)


def parse_hubble_block(display: str, strict: bool, batch_rows: int, start: int, block: bytes) -> BlockResult:
    """Parse one block of lines (in this process or a worker); the parser and its caches are reused."""
    key = (display, strict, batch_rows)
    parser = _parsers.get(key)
    if parser is None:
        _parsers.clear()
        parser = _parsers[key] = HubbleParser(display, strict, batch_rows)
    return parser.parse_block(start, block)


class HubbleParser:
    """Turns records into batches: the typed fast path first, the general path for the rest.

    The general path takes other framings, lowerCamelCase, events and anything the fast path
    would have to guess at, and is the one that says what is wrong with a bad record.
    """

    def __init__(self, display: str, strict: bool, batch_rows: int) -> None:
        self.display = display
        self.strict = strict
        self.batch_rows = batch_rows
        self.stats = SourceStats()
        self._endpoints = Endpoints()

    def parse_block(self, start: int, block: bytes) -> BlockResult:
        """One block of whole lines, with its own counts; replies are told apart within the block."""
        self.stats = SourceStats()
        records = (Record(start + offset, raw=line) for offset, line in enumerate(block.split(b"\n")) if line.strip())
        return finish_block(list(self.parse(records)), self.stats, self.batch_rows)

    def parse(  # noqa: C901, PLR0912 - the per-line loop (fast path, then the exact parser): kept in one frame
        self, records: Iterable[Record]
    ) -> Iterator[pa.RecordBatch]:
        """Batches from records, counting skips and events in `stats`; replies are left to the caller."""
        stats, strict, display = self.stats, self.strict, self.display
        fast, cols = FastColumns(self._endpoints), FlowColumns()
        for record in records:
            stats.records += 1
            value = record.value
            if record.raw:
                decoded = fast_decode(record.raw)
                if decoded is not None:
                    try:
                        taken = fast_append(fast, *decoded, parse_time_ns)
                    except BadField:
                        taken = False
                    if taken:
                        if len(fast) >= self.batch_rows:
                            yield self._flush(fast)
                            fast = FastColumns(self._endpoints)
                        continue
                try:
                    value = orjson.loads(record.raw)
                except orjson.JSONDecodeError as e:
                    record.error = f"not valid JSON ({short_error(e)})"
            where = f"{display}:{record.line}"
            if record.error:
                stats.skip(where, record.error, strict=strict)
                continue
            if not isinstance(value, dict):
                stats.skip(where, f"expected a JSON object, got {type(value).__name__}", strict=strict)
                continue
            try:
                self._take(cols, value)
            except BadField as e:
                stats.skip(where, str(e), strict=strict)
            except _NotAFlow as e:
                stats.other_events[str(e)] += 1
            if len(cols) >= self.batch_rows:
                yield self._flush(cols)
                cols = FlowColumns()
        for remaining in (fast, cols):
            if len(remaining):
                yield self._flush(remaining)

    def _take(self, cols: FlowColumns, value: dict[str, Any]) -> None:
        flow = value.get("flow")
        if flow is not None:
            if not isinstance(flow, dict):
                raise BadField(f"field flow: expected an object, got {show(flow)}")
            _append_flow(cols, flow, either(value, "node_name", "nodeName"), value.get("time"))
            return
        kind = _event_kind(value)
        if kind == LOST_EVENTS:
            lost = _lost_count(either(value, "lost_events", "lostEvents"))
            count_lost_events(self.stats, str(either(value, "node_name", "nodeName") or ""), lost)
            return
        if kind is not None:
            raise _NotAFlow(kind)
        if _FLOW_KEYS.isdisjoint(value):
            calico = detect_calico_format(value)
            if calico is not None:
                raise BadField(f"a Calico {calico} record, not a Hubble flow: import it with `synth import calico`")
            keys = ", ".join(sorted(value)[:5]) or "none"
            raise BadField(f"not a Hubble flow or event (keys: {keys})")
        _append_flow(cols, value, None, None)

    def _flush(self, cols: FlowColumns | FastColumns) -> pa.RecordBatch:
        self.stats.flows += len(cols)
        self.stats.saw_time(min(cols.time), max(cols.time))
        return cols.to_batch()
