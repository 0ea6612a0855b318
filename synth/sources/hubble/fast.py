"""The exact parser's typed path: msgspec decoding and interned endpoints.

Most files are read by the native reader (`hubble.native`); the exact parser reads what it hands
over (odd lines, whole blocks DuckDB rejects, other framings), and this is its faster half.

Lines are decoded with msgspec straight into structs that hold only the fields synth uses (a
decoder that skips everything else is about twice as fast as building dictionaries), and each
distinct endpoint (identity, namespace, pod, labels, owner) is resolved once and referred to by
index; endpoint columns are then gathered in Arrow. The struct fields are handed to
`hubble.semantics` and `hubble.enums`, which decide what they mean for every path (no dict per
flow is built for that). A line this path cannot take exactly
(lowerCamelCase names, quoted integers, a type error, an event that is not a flow) returns None
and goes through the general path, which accepts it or says precisely what is wrong.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import pyarrow as pa

from synth.sources.columns import DIRECTION_INDEX, PROTOCOL_INDEX, VERDICT_INDEX, Labels, _ListColumn, label_map
from synth.sources.hubble.enums import DIRECTION_ROWS, PROTOCOL_ROWS, SOCK_FLOW_TYPES, VERDICT_ROWS
from synth.sources.hubble.semantics import (
    MAX_PORT,
    NO_ENDPOINT,
    POLICY_LISTS,
    aggregate_count,
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
from synth.store.schema import FLOW_SCHEMA, KINDS, SOURCES

Port = Annotated[int, msgspec.Meta(ge=0, le=MAX_PORT)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Enum = str | int | None


class _Workload(msgspec.Struct):
    name: str = ""
    kind: str = ""


class _Endpoint(msgspec.Struct):
    identity: Count = 0
    namespace: str = ""
    labels: tuple[str, ...] = ()
    pod_name: str = ""
    workloads: tuple[_Workload, ...] = ()


class _Flags(msgspec.Struct):
    SYN: bool = False
    ACK: bool = False


class _Ports(msgspec.Struct):
    source_port: Port | None = None
    destination_port: Port | None = None
    flags: _Flags | None = None


class _Layer4(msgspec.Struct):
    TCP: _Ports | None = None
    UDP: _Ports | None = None
    SCTP: _Ports | None = None
    ICMPv4: dict[str, object] | None = None
    ICMPv6: dict[str, object] | None = None
    VRRP: dict[str, object] | None = None
    IGMP: dict[str, object] | None = None


class _Addresses(msgspec.Struct):
    source: str = ""
    destination: str = ""


class _Service(msgspec.Struct):
    name: str = ""
    namespace: str = ""


class _Dns(msgspec.Struct):
    query: str = ""
    ips: tuple[str, ...] = ()


class _Http(msgspec.Struct):
    method: str = ""
    url: str = ""


class _Layer7(msgspec.Struct):
    type: Enum = None
    dns: _Dns | None = None
    http: _Http | None = None


class _Policy(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    kind: str = ""


class _Aggregate(msgspec.Struct):
    ingress_flow_count: Count = 0
    egress_flow_count: Count = 0
    unknown_direction_flow_count: Count = 0


class _Flow(msgspec.Struct):
    time: str = ""
    verdict: Enum = None
    drop_reason_desc: Enum = None
    drop_reason: Count = 0
    IP: _Addresses | None = None
    l4: _Layer4 | None = None
    source: _Endpoint | None = None
    destination: _Endpoint | None = None
    Type: Enum = None
    node_name: str = ""
    destination_names: tuple[str, ...] = ()
    l7: _Layer7 | None = None
    reply: bool = False
    is_reply: bool | None = None
    traffic_direction: Enum = None
    destination_service: _Service | None = None
    egress_allowed_by: tuple[_Policy, ...] = ()
    ingress_allowed_by: tuple[_Policy, ...] = ()
    egress_denied_by: tuple[_Policy, ...] = ()
    ingress_denied_by: tuple[_Policy, ...] = ()
    aggregate: _Aggregate | None = None


class _Envelope(msgspec.Struct):
    flow: _Flow | None = None
    node_name: str = ""
    time: str = ""


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_BARE = msgspec.json.Decoder(_Flow)
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)
_EVENT_MARKERS = (b'"lost_events"', b'"node_status"', b'"agent_event"', b'"debug_event"', b'"lostEvents"',
                  b'"nodeStatus"', b'"agentEvent"', b'"debugEvent"')
_TCP, _UDP, _SCTP = PROTOCOL_ROWS["TCP"], PROTOCOL_ROWS["UDP"], PROTOCOL_ROWS["SCTP"]
_ICMP4, _ICMP6, _OTHER = PROTOCOL_ROWS["ICMPv4"], PROTOCOL_ROWS["ICMPv6"], PROTOCOL_ROWS.unknown
_SOURCE_ARRAY = pa.array(SOURCES, pa.string())


class Endpoints:
    """Distinct endpoints seen so far; each flow refers to them by index."""

    def __init__(self) -> None:
        self.index: dict[tuple[object, ...], int] = {}
        self.kind: list[int] = []
        self.namespace: list[str | None] = []
        self.pod: list[str | None] = []
        self.workload: list[str | None] = []
        self.labels: list[Labels] = []
        self.ns_labels: list[Labels] = []
        self._arrays: tuple[int, dict[str, pa.Array]] | None = None

    def of(self, ep: _Endpoint | None) -> int:
        """The index of an endpoint, resolving its labels and kind the first time it is seen."""
        owner = None
        if ep is None:
            key: tuple[object, ...] = ()
        else:
            owner = ep.workloads[0] if ep.workloads else None
            key = (ep.identity, ep.namespace, ep.pod_name, ep.labels,
                   (owner.kind, owner.name) if owner is not None else None)
        found = self.index.get(key)
        if found is not None:
            return found
        position = self.index[key] = len(self.kind)
        if ep is None:
            resolved = NO_ENDPOINT
        else:
            resolved = endpoint(ep.identity, ep.namespace, ep.pod_name, ep.labels,
                                owner.kind if owner is not None else "", owner.name if owner is not None else "")
        self.kind.append(resolved.kind)
        self.namespace.append(resolved.namespace)
        self.pod.append(resolved.pod)
        self.workload.append(resolved.workload)
        self.labels.append(resolved.labels)
        self.ns_labels.append(resolved.ns_labels)
        return position

    def arrays(self) -> dict[str, pa.Array]:
        """The endpoint table as Arrow arrays, rebuilt only when it grew."""
        if self._arrays is None or self._arrays[0] != len(self.kind):
            kinds = pa.DictionaryArray.from_arrays(pa.array(self.kind, pa.int32()), pa.array(KINDS, pa.string()))
            self._arrays = (len(self.kind), {
                "kind": kinds,
                "namespace": pa.array(self.namespace, pa.string()),
                "pod": pa.array(self.pod, pa.string()),
                "workload": pa.array(self.workload, pa.string()),
                "labels": label_map(self.labels),
                "ns_labels": label_map(self.ns_labels),
            })
        return self._arrays[1]


class FastColumns:
    """Column buffers of the fast path; endpoint columns hold indices into `Endpoints`."""

    def __init__(self, endpoints: Endpoints, source: str = "hubble") -> None:
        self.endpoints = endpoints
        self.source = SOURCES.index(source)
        self.time: list[int] = []
        self.count: list[int] = []
        self.verdict: list[int] = []
        self.drop_reason: list[str | None] = []
        self.direction: list[int] = []
        self.is_reply: list[bool | None] = []
        self.protocol: list[int] = []
        self.src_port: list[int | None] = []
        self.dst_port: list[int | None] = []
        self.src_ip: list[str | None] = []
        self.dst_ip: list[str | None] = []
        self.src: list[int] = []
        self.dst: list[int] = []
        self.dst_names = _ListColumn()
        self.dns_query: list[str | None] = []
        self.dns_answers = _ListColumn()
        self.http_method: list[str | None] = []
        self.http_path: list[str | None] = []
        self.dst_service: list[str | None] = []
        self.node: list[str | None] = []
        self.policies = _ListColumn()

    def __len__(self) -> int:
        return len(self.time)

    def to_batch(self) -> pa.RecordBatch:
        """The buffered flows as one FLOW_SCHEMA batch."""
        n = len(self.time)
        table = self.endpoints.arrays()
        src, dst = pa.array(self.src, pa.int32()), pa.array(self.dst, pa.int32())
        none_int = pa.nulls(n, pa.int32())
        none_long = pa.nulls(n, pa.int64())
        columns = {
            "time": pa.array(self.time, FLOW_SCHEMA.field("time").type),
            "count": pa.array(self.count, pa.int64()),
            "source": pa.DictionaryArray.from_arrays(pa.array([self.source] * n, pa.int32()), _SOURCE_ARRAY),
            "verdict": _dictionary(self.verdict, "verdict"),
            "drop_reason": pa.array(self.drop_reason, pa.string()).dictionary_encode(),
            "direction": _dictionary(self.direction, "direction"),
            "is_reply": pa.array(self.is_reply, pa.bool_()),
            "protocol": _dictionary(self.protocol, "protocol"),
            "src_port": pa.array(self.src_port, pa.int32()),
            "dst_port": pa.array(self.dst_port, pa.int32()),
            "dst_names": self.dst_names.array(),
            "dns_query": pa.array(self.dns_query, pa.string()),
            "dns_answers": self.dns_answers.array(),
            "http_method": pa.array(self.http_method, pa.string()),
            "http_path": pa.array(self.http_path, pa.string()),
            "dst_service": pa.array(self.dst_service, pa.string()),
            "dst_service_port": none_int,
            "node": pa.array(self.node, pa.string()),
            "policies": self.policies.array(),
            "flows_started": none_long,
            "flows_completed": none_long,
        }
        for side, indices, ips in (("src", src, self.src_ip), ("dst", dst, self.dst_ip)):
            columns[f"{side}_ip"] = pa.array(ips, pa.string())
            for name in ("kind", "namespace", "pod", "workload", "labels", "ns_labels"):
                columns[f"{side}_{name}"] = table[name].take(indices)
        return pa.RecordBatch.from_arrays([columns[f.name] for f in FLOW_SCHEMA], schema=FLOW_SCHEMA)


_DICTIONARY_VALUES = {name: pa.array(values, pa.string()) for name, values in (
    ("verdict", list(VERDICT_INDEX)), ("direction", list(DIRECTION_INDEX)), ("protocol", list(PROTOCOL_INDEX)))}


def _dictionary(indices: list[int], name: str) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), _DICTIONARY_VALUES[name])


def decode(line: bytes) -> tuple[_Flow, str, str] | None:
    """The flow of one line with its envelope's node and time, or None for the general path."""
    if b'Name"' in line:  # lowerCamelCase producer (podName, nodeName): the general path reads it
        return None
    try:
        if line.lstrip().startswith(b'{"flow"'):
            envelope = _ENVELOPE.decode(line)
            if envelope.flow is None:
                return None
            return envelope.flow, envelope.node_name, envelope.time
        if any(marker in line for marker in _EVENT_MARKERS):
            return None
        return _BARE.decode(line), "", ""
    except _DECODE_ERRORS:
        return None


def append(  # noqa: C901, PLR0912, PLR0915 - one flow's columns in one pass: a call per field costs speed
    cols: FastColumns, flow: _Flow, envelope_node: str, envelope_time: str, parse_time: object
) -> bool:
    """Append one decoded flow; False when the general path must judge it (nothing appended)."""
    if flow.Type in SOCK_FLOW_TYPES:
        return False
    time_text = flow.time or envelope_time
    if not time_text:
        return False
    time_ns = parse_time(time_text, "flow.time")  # type: ignore[operator]
    verdict = VERDICT_ROWS[flow.verdict]
    l4 = flow.l4
    ports = None
    protocol = _OTHER
    if l4 is not None:
        if l4.TCP is not None:
            protocol, ports = _TCP, l4.TCP
        elif l4.UDP is not None:
            protocol, ports = _UDP, l4.UDP
        elif l4.SCTP is not None:
            protocol, ports = _SCTP, l4.SCTP
        elif l4.ICMPv4 is not None:
            protocol = _ICMP4
        elif l4.ICMPv6 is not None:
            protocol = _ICMP6
    flags = ports.flags if protocol == _TCP and ports is not None else None
    l7 = flow.l7
    is_reply = reply_flag(flow.is_reply, flow.reply, l7.type if l7 is not None else None,
                          flags is not None and flags.SYN, flags is not None and flags.ACK)
    aggregate = flow.aggregate
    count = 1
    if aggregate is not None:
        count = aggregate_count(aggregate.ingress_flow_count, aggregate.egress_flow_count,
                                aggregate.unknown_direction_flow_count)
    policies: list[str] = []
    if flow.egress_allowed_by or flow.ingress_allowed_by or flow.egress_denied_by or flow.ingress_denied_by:
        for attribute, _, prefix in POLICY_LISTS:
            for policy in getattr(flow, attribute):
                policies.append(policy_entry(prefix, policy.kind, policy.namespace, policy.name))
    addresses = flow.IP
    service = flow.destination_service
    dns = l7.dns if l7 is not None else None
    http = l7.http if l7 is not None else None
    endpoints = cols.endpoints

    cols.time.append(time_ns)
    cols.count.append(count)
    cols.verdict.append(verdict)
    cols.drop_reason.append(drop_reason(flow.drop_reason_desc, verdict, flow.drop_reason))
    cols.direction.append(DIRECTION_ROWS[flow.traffic_direction])
    cols.is_reply.append(is_reply)
    cols.protocol.append(protocol)
    cols.src_port.append(port(ports.source_port) if ports is not None else None)
    cols.dst_port.append(port(ports.destination_port) if ports is not None else None)
    cols.src_ip.append(addresses.source or None if addresses is not None else None)
    cols.dst_ip.append(addresses.destination or None if addresses is not None else None)
    cols.src.append(endpoints.of(flow.source))
    cols.dst.append(endpoints.of(flow.destination))
    names = cols.dst_names
    if flow.destination_names:
        names.values.extend(flow.destination_names)
    names.offsets.append(len(names.values))
    cols.dns_query.append(dns.query or None if dns is not None else None)
    answers = cols.dns_answers
    if dns is not None and dns.ips:
        answers.values.extend(dns.ips)
    answers.offsets.append(len(answers.values))
    cols.http_method.append(http_method(http.method) if http is not None else None)
    cols.http_path.append(http_path(http.url) if http is not None else None)
    cols.dst_service.append(service_name(service.namespace, service.name) if service is not None else None)
    cols.node.append(node_name(flow.node_name, envelope_node))
    listed = cols.policies
    if policies:
        listed.values.extend(policies)
    listed.offsets.append(len(listed.values))
    return True
