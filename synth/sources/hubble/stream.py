"""Live flows from Hubble's Observer gRPC API (hubble-relay, or one cilium-agent): decoding.

`hubble.client.HubbleClient` opens the channel (plain, TLS or mTLS, through `sources.transport`),
asks `ServerStatus`, and opens `/observer.Observer/GetFlows` streams that `synth.collect.hubble`
consumes. `FlowDecoder` turns serialized `GetFlowsResponse`s into `FlowColumns` rows many at a
time: they are parsed together in one call as a `flowbatch.Batch` (synth's view of the same bytes,
proto/flowbatch), read column by column (no JSON, no per-flow dicts), and handed to
`hubble.semantics`, which makes every decision for the file importer too: same enums, drop reasons,
reply inference, endpoint kinds and labels. Lost events and relay node status are counted and kept
as collection facts, never stored as flows.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate, chain, islice
from typing import Generic, Protocol, TypeVar

import pyarrow as pa
from google.protobuf.message import DecodeError

from synth._proto.flow import flow_pb2
from synth._proto.flowbatch import flowbatch_pb2
from synth._proto.relay import relay_pb2
from synth.sources.columns import SOURCE_INDEX, FlowColumns
from synth.sources.hubble.enums import DIRECTION_ROWS, PORTED_PROTOCOLS, PROTOCOL_ROWS, VERDICT_ROWS
from synth.sources.hubble.semantics import (
    LOST_EVENTS,
    MAX_PORT,
    NODE_STATUS,
    POLICY_LISTS,
    SOCKET_EVENT,
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
from synth.sources.interface import SourceStats

_NODE_STATE = {v.number: v.name for v in relay_pb2.NodeState.DESCRIPTOR.values}
_KEPT_NODE_EVENTS = 100
_SOCK = flow_pb2.SOCK  # enums.SOCK_FLOW_TYPES by number: the batch view reads Type as a number
_Decoded = TypeVar("_Decoded")
_Message_co = TypeVar("_Message_co", covariant=True)


class RecentFlows:
    """Keys of the flows received within `window_ns` of the newest one, to drop what a resumed stream resends.

    A key is (time, node, uuid), or (time, node, hash of the serialized flow) for producers without
    uuids. At most `limit` keys are kept (oldest forgotten first).
    """

    def __init__(self, window_ns: int, limit: int = 1 << 17) -> None:
        self.window_ns = window_ns
        self.limit = limit
        self.newest_ns: int | None = None
        self._keys: dict[tuple[int, str, object], None] = {}
        self._order: deque[tuple[int, tuple[int, str, object]]] = deque()

    def resume_since(self) -> int | None:
        """Where a reopened stream should start: the newest flow's time minus the window."""
        return None if self.newest_ns is None else self.newest_ns - self.window_ns

    def seen(self, time_ns: int, node: str, tag: object) -> bool:
        """Whether the event (time, node, tag) was already received; remembers it otherwise."""
        key = (time_ns, node, tag)
        keys = self._keys
        if key in keys:
            return True
        keys[key] = None
        self._order.append((time_ns, key))
        self._forget_old(time_ns)
        return False

    def seen_many(self, times: list[int], nodes: list[str], tags: list[object]) -> list[bool]:
        """`seen` for many events at once: without any repeat (the usual case) they are remembered in bulk."""
        keys = list(zip(times, nodes, tags, strict=True))
        if not keys:
            return []
        if not self._keys.keys().isdisjoint(keys) or len(set(keys)) != len(keys):
            return [self.seen(*key) for key in keys]
        self._keys.update(dict.fromkeys(keys))
        self._order.extend(zip(times, keys, strict=True))
        self._forget_old(max(times))
        return [False] * len(keys)

    def _forget_old(self, time_ns: int) -> None:
        newest = self.newest_ns
        if newest is None or time_ns > newest:
            self.newest_ns = newest = time_ns
        horizon, keys, order = newest - self.window_ns, self._keys, self._order
        while order and (order[0][0] < horizon or len(order) > self.limit):
            del keys[order.popleft()[1]]


@dataclass(slots=True)
class _Side:
    """One decoded endpoint; label maps kept flat, ready to extend the map columns' key/value lists."""

    kind: int
    namespace: str | None
    pod: str | None
    workload: str | None
    label_keys: tuple[str, ...]
    label_values: tuple[str, ...]
    ns_keys: tuple[str, ...]
    ns_values: tuple[str, ...]


@dataclass(slots=True)
class NodeEvents:
    """Relay node status events: counts per state, and the latest events verbatim."""

    by_state: Counter[str] = field(default_factory=Counter)
    latest: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=_KEPT_NODE_EVENTS))
    unavailable: set[str] = field(default_factory=set)


class FlowDecoder:
    """Appends GetFlowsResponse messages to FlowColumns, decided by `hubble.semantics` as file imports are.

    Responses are decoded many at a time: each serialized response becomes one entry of a
    `flowbatch.Batch` (`_framed`), parsed in one call (upb), then read column by column. Repeating
    sub-messages (endpoints, IP pairs, layer 4, services, layer 7) arrive as bytes and are decoded
    once per distinct value (`_Lookups`). A batch that does not parse is read response by response,
    so one bad response is skipped alone.
    """

    def __init__(self, resume_window_ns: int = 1_000_000_000) -> None:
        self.stats = SourceStats()
        self.recent = RecentFlows(resume_window_ns)
        self.duplicates = 0
        self.nodes = NodeEvents()
        self._conntrack = ReplyTracker()
        self._endpoints = _Lookup(flowbatch_pb2.Endpoints.FromString, _decode_endpoint)
        self._layer4 = _Lookup(flowbatch_pb2.Layer4s.FromString, _decode_layer4)
        self._layer7 = _Lookup(flowbatch_pb2.Layer7s.FromString, _decode_layer7)
        self._addresses = _Lookup(flowbatch_pb2.IPs.FromString, _decode_addresses)
        self._services = _Lookup(flowbatch_pb2.Services.FromString, _decode_service)
        self._aggregates = _Lookup(flowbatch_pb2.Aggregates.FromString, _aggregate_count)
        self._policies = [
            _Lookup(flowbatch_pb2.Policies.FromString, partial(_decode_policy, prefix)) for _, _, prefix in POLICY_LISTS
        ]

    def take(self, cols: FlowColumns, responses: Sequence[bytes]) -> None:
        """Decode serialized GetFlowsResponses; append new flows, count lost events, node status and skips."""
        for start in range(0, len(responses), _PARSED_TOGETHER):
            self._take(cols, responses[start : start + _PARSED_TOGETHER])

    def _take(self, cols: FlowColumns, responses: Sequence[bytes]) -> None:
        parsed, raws = self._parse(responses)
        self.stats.records += len(parsed)
        kinds = [response.WhichOneof("response_types") for response in parsed]
        if kinds.count("flow") != len(kinds):
            for response, kind in zip(parsed, kinds, strict=True):
                if kind != "flow":
                    self._event(response)
            parsed = [response for response, kind in zip(parsed, kinds, strict=True) if kind == "flow"]
            raws = [data for data, kind in zip(raws, kinds, strict=True) if kind == "flow"]
        if parsed:
            self._flows(cols, parsed, raws)

    def _parse(self, responses: Sequence[bytes]) -> tuple[list[flowbatch_pb2.Response], Sequence[bytes]]:
        """The responses parsed in one call, or (when that fails) one by one without the bad ones."""
        try:
            return list(_parse_batch(_framed(responses)).responses), responses
        except DecodeError:
            pass
        parsed, raws = [], []
        for data in responses:
            try:
                parsed.append(_parse_one(data))
            except DecodeError as e:
                self.stats.skip("stream", f"not a GetFlowsResponse: {e}", strict=False)
                continue
            raws.append(data)
        return parsed, raws

    def _flows(self, cols: FlowColumns, responses: list[flowbatch_pb2.Response], raws: Sequence[bytes]) -> None:
        """Append the flows of flow responses (the hot path: one pass of attribute reads, then columns)."""
        read = [
            (f.time, node_name(f.node_name, r.node_name), f.Type, f.uuid, f.l4, f.IP, f.source, f.destination,
             f.verdict, f.drop_reason_desc, f.drop_reason, f.traffic_direction, f.reply,
             f.is_reply.value if f.HasField("is_reply") else None, f.l7, f.destination_service,
             f.destination_names, f.aggregate,
             (f.egress_allowed_by, f.ingress_allowed_by, f.egress_denied_by, f.ingress_denied_by))
            for r in responses
            for f in (r.flow,)
        ]  # fmt: skip
        (stamps, nodes, types, uuids, l4s, ips, sources, destinations, verdicts, descs, deprecated, directions,
         replies, is_replies, l7s, services, names, aggregates, policy_lists) = map(
             list, zip(*read, strict=True))  # fmt: skip
        times = [stamp.seconds * 1_000_000_000 + stamp.nanos for stamp in stamps]
        keep = self._admit(responses, raws, times, nodes, types, uuids)
        layer4 = self._layer4.all(l4s)
        for row, found in enumerate(layer4):
            if keep[row] and found.bad is not None:
                self.stats.skip("stream", found.bad, strict=False)
                keep[row] = False
        if not all(keep):
            (times, nodes, layer4, ips, sources, destinations, verdicts, descs, deprecated, directions, replies,
             is_replies, l7s, services, names, aggregates, policy_lists) = (
                [value for value, kept in zip(column, keep, strict=True) if kept]
                for column in (times, nodes, layer4, ips, sources, destinations, verdicts, descs, deprecated,
                               directions, replies, is_replies, l7s, services, names, aggregates, policy_lists)
            )  # fmt: skip
            if not times:
                return
        layer7 = self._layer7.all(l7s)
        verdict_rows = [VERDICT_ROWS[v] for v in verdicts]
        src, dst = self._endpoints.all(sources), self._endpoints.all(destinations)
        addresses = self._addresses.all(ips)
        policies = self._policy_entries(policy_lists)

        cols.time.extend(times)
        cols.count.extend([found[0] for found in self._aggregates.all(aggregates)])
        cols.source.extend([_HUBBLE] * len(times))
        cols.verdict.extend(verdict_rows)
        cols.drop_reason.extend(map(drop_reason, descs, verdict_rows, deprecated))
        cols.direction.extend([DIRECTION_ROWS[d] for d in directions])
        cols.is_reply.extend(
            map(reply_flag, is_replies, replies, [l7.type for l7 in layer7], [l4.syn for l4 in layer4],
                [l4.ack for l4 in layer4])
        )  # fmt: skip
        cols.protocol.extend([l4.protocol for l4 in layer4])
        cols.src_port.extend([l4.src_port for l4 in layer4])
        cols.dst_port.extend([l4.dst_port for l4 in layer4])
        cols.src_ip.extend([pair[0] for pair in addresses])
        cols.dst_ip.extend([pair[1] for pair in addresses])
        for sides, kind, namespace, pod, workload, labels, ns_labels in (
            (src, cols.src_kind, cols.src_namespace, cols.src_pod, cols.src_workload, cols.src_labels,
             cols.src_ns_labels),
            (dst, cols.dst_kind, cols.dst_namespace, cols.dst_pod, cols.dst_workload, cols.dst_labels,
             cols.dst_ns_labels),
        ):  # fmt: skip
            kind.extend([side.kind for side in sides])
            namespace.extend([side.namespace for side in sides])
            pod.extend([side.pod for side in sides])
            workload.extend([side.workload for side in sides])
            _extend_map(labels, [side.label_keys for side in sides], [side.label_values for side in sides])
            _extend_map(ns_labels, [side.ns_keys for side in sides], [side.ns_values for side in sides])
        _extend_list(cols.dst_names, names)
        cols.dns_query.extend([l7.dns_query for l7 in layer7])
        _extend_list(cols.dns_answers, [l7.dns_answers for l7 in layer7])
        cols.http_method.extend([l7.http_method for l7 in layer7])
        cols.http_path.extend([l7.http_path for l7 in layer7])
        cols.dst_service.extend([found[0] for found in self._services.all(services)])
        cols.dst_service_port.extend([None] * len(times))
        cols.node.extend(nodes)
        _extend_list(cols.policies, policies)
        cols.flows_started.extend([None] * len(times))
        cols.flows_completed.extend([None] * len(times))

    def _policy_entries(self, policy_lists: list[tuple[Sequence[bytes], ...]]) -> list[Sequence[str]]:
        """Each flow's policies column: its four lists' entries in order, decoded list by list for all flows."""
        found: list[Sequence[str]] = [()] * len(policy_lists)
        rows = [row for row, lists in enumerate(policy_lists) if any(lists)]
        if not rows:
            return found
        decoded = [
            iter(lookup.all([data for row in rows for data in policy_lists[row][position]]))
            for position, lookup in enumerate(self._policies)
        ]
        for row in rows:
            found[row] = [next(entries) for entries, listed in zip(decoded, policy_lists[row], strict=True)
                          for _ in listed]  # fmt: skip
        return found

    def _admit(
        self,
        responses: list[flowbatch_pb2.Response],
        raws: Sequence[bytes],
        times: list[int],
        nodes: list[str | None],
        types: list[int],
        uuids: list[str],
    ) -> list[bool]:
        """Which flows to keep: not without a time, not socket events, not received before (in that order).

        A flow without its own time takes the envelope's (`times` is updated); without either it is skipped.
        """
        keep = [True] * len(times)
        for row in [row for row, moment in enumerate(times) if moment == 0]:
            flow, envelope = responses[row].flow, responses[row]
            if not flow.HasField("time"):
                if envelope.HasField("time"):
                    times[row] = envelope.time.seconds * 1_000_000_000 + envelope.time.nanos
                else:
                    self.stats.skip(
                        "stream", "field time: missing (neither the flow nor its envelope has one)", strict=False
                    )
                    keep[row] = False
        if _SOCK in types:
            for row, flow_type in enumerate(types):
                if keep[row] and flow_type == _SOCK:
                    self.stats.other_events[SOCKET_EVENT] += 1
                    keep[row] = False
        tags: list[object] = [uuid or hash(data) for uuid, data in zip(uuids, raws, strict=True)]
        rows = [row for row, kept in enumerate(keep) if kept]
        seen = self.recent.seen_many([times[row] for row in rows], [nodes[row] or "" for row in rows],
                                     [tags[row] for row in rows])  # fmt: skip
        for row, again in zip(rows, seen, strict=True):
            if again:
                self.duplicates += 1
                keep[row] = False
        return keep

    def finish(self, cols: FlowColumns) -> pa.RecordBatch:
        """The appended rows as a FLOW_SCHEMA batch, replies resolved as the importer does."""
        self._conntrack.resolve(cols)
        self.stats.flows += len(cols)
        self.stats.saw_time(min(cols.time), max(cols.time))
        return cols.to_batch()

    def _event(self, response: flowbatch_pb2.Response) -> None:
        kind = response.WhichOneof("response_types")
        stats = self.stats
        if kind == LOST_EVENTS:
            event = response.lost_events
            stamp = response.time
            tag = hash(event.SerializeToString(deterministic=True))
            if self.recent.seen(stamp.seconds * 1_000_000_000 + stamp.nanos, response.node_name, tag):
                self.duplicates += 1
                return
            count_lost_events(stats, response.node_name, event.num_events_lost)
        elif kind == NODE_STATUS:
            self._node_status(response)
            stats.other_events[NODE_STATUS] += 1
        else:
            stats.other_events["unknown response"] += 1

    def _node_status(self, response: flowbatch_pb2.Response) -> None:
        event = response.node_status
        state = _NODE_STATE.get(event.state_change, str(event.state_change))
        names = list(event.node_names)
        self.nodes.by_state[state] += len(names) or 1
        if state == "NODE_CONNECTED":
            self.nodes.unavailable.difference_update(names)
        elif state != "UNKNOWN_NODE_STATE":
            self.nodes.unavailable.update(names)
        stamp = response.time
        self.nodes.latest.append(
            {
                "time_ns": stamp.seconds * 1_000_000_000 + stamp.nanos,
                "state": state,
                "nodes": names,
                "message": event.message,
            }
        )


def _bad_port(protocol: str, src_port: int | None, dst_port: int | None) -> str:
    side, bad = ("source_port", src_port) if (src_port or 0) > 65535 else ("destination_port", dst_port)
    return f"field flow.l4.{protocol}.{side}: expected a port number, got {bad}"


def _decode_endpoint(endpoint_message: flow_pb2.Endpoint) -> _Side:
    owner = endpoint_message.workloads[0] if endpoint_message.workloads else None
    resolved = endpoint(
        endpoint_message.identity,
        endpoint_message.namespace,
        endpoint_message.pod_name,
        tuple(endpoint_message.labels),
        owner.kind if owner is not None else "",
        owner.name if owner is not None else "",
    )
    return _Side(
        kind=resolved.kind,
        namespace=resolved.namespace,
        pod=resolved.pod,
        workload=resolved.workload,
        label_keys=tuple(k for k, _ in resolved.labels),
        label_values=tuple(v for _, v in resolved.labels),
        ns_keys=tuple(k for k, _ in resolved.ns_labels),
        ns_values=tuple(v for _, v in resolved.ns_labels),
    )


_HUBBLE = SOURCE_INDEX["hubble"]


_parse_batch = flowbatch_pb2.Batch.FromString
_parse_one = flowbatch_pb2.Response.FromString
_LOOKUP_LIMIT = 65536  # distinct values kept per lookup (cleared when full)
# Responses parsed in one call: larger batches parse no faster and are slower to read (memory caches).
_PARSED_TOGETHER = 512


def varint(value: int) -> bytes:
    """A protobuf base-128 varint (field tags and lengths, for joining serialized messages without parsing)."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# `responses` entry headers (field 1, length-delimited) for the lengths of nearly every response.
_ENTRY_HEADS = [b"\x0a" + varint(length) for length in range(1 << 14)]


def _framed(responses: Sequence[bytes]) -> bytes:
    """The serialized responses as one serialized `flowbatch.Batch`, joined without parsing them."""
    lengths = list(map(len, responses))
    if lengths and max(lengths) >= len(_ENTRY_HEADS):
        heads = [b"\x0a" + varint(length) for length in lengths]
    else:
        heads = list(map(_ENTRY_HEADS.__getitem__, lengths))
    parts: list[bytes] = [b""] * (2 * len(lengths))
    parts[::2] = heads
    parts[1::2] = responses
    return b"".join(parts)


def _extend_map(column: _FlatMap, keys: list[tuple[str, ...]], values: list[tuple[str, ...]]) -> None:
    start = len(column.keys)
    column.keys.extend(chain.from_iterable(keys))
    column.values.extend(chain.from_iterable(values))
    column.offsets.extend(islice(accumulate(map(len, keys), initial=start), 1, None))


def _extend_list(column: _FlatList, lists: Sequence[Sequence[str]]) -> None:
    start = len(column.values)
    column.values.extend(chain.from_iterable(lists))
    column.offsets.extend(islice(accumulate(map(len, lists), initial=start), 1, None))


class _FlatMap(Protocol):
    offsets: list[int]
    keys: list[str]
    values: list[str]


class _FlatList(Protocol):
    offsets: list[int]
    values: list[str]


@dataclass(frozen=True, slots=True)
class _Layer4:
    """A decoded flow.Layer4: the protocol row, ports, the TCP flags replies are told by, or why it is refused."""

    protocol: int
    src_port: int | None
    dst_port: int | None
    syn: bool
    ack: bool
    bad: str | None


@dataclass(frozen=True, slots=True)
class _Layer7:
    """What synth reads of a flow.Layer7: its type (None without one), a DNS query and answers, and
    an HTTP request's method and path."""

    type: int | None
    dns_query: str | None
    dns_answers: tuple[str, ...]
    http_method: str | None = None
    http_path: str | None = None


def _decode_layer4(l4: flow_pb2.Layer4) -> _Layer4:
    which = l4.WhichOneof("protocol")
    src_port = dst_port = None
    syn = ack = False
    bad = None
    if which in PORTED_PROTOCOLS:
        ports = getattr(l4, which)
        src_port, dst_port = port(ports.source_port), port(ports.destination_port)
        if (src_port or 0) > MAX_PORT or (dst_port or 0) > MAX_PORT:
            bad = _bad_port(which, src_port, dst_port)
        if which == "TCP" and ports.HasField("flags"):
            syn, ack = ports.flags.SYN, ports.flags.ACK
    return _Layer4(PROTOCOL_ROWS[which], src_port, dst_port, syn, ack, bad)


def _decode_layer7(l7: flow_pb2.Layer7) -> _Layer7:
    if not l7.ByteSize():
        return _Layer7(None, None, ())  # no layer 7 (an empty one tells nothing either)
    if l7.HasField("dns"):
        return _Layer7(l7.type, l7.dns.query or None, tuple(l7.dns.ips))
    if l7.HasField("http"):
        return _Layer7(l7.type, None, (), http_method(l7.http.method), http_path(l7.http.url))
    return _Layer7(l7.type, None, ())


def _decode_addresses(ip: flow_pb2.IP) -> tuple[str | None, str | None]:
    return ip.source or None, ip.destination or None


def _decode_service(service: flow_pb2.Service) -> tuple[str | None]:
    return (service_name(service.namespace, service.name),)


def _decode_policy(prefix: str, policy: flow_pb2.Policy) -> str:
    return policy_entry(prefix, policy.kind, policy.namespace, policy.name)


def _aggregate_count(aggregate: flow_pb2.Aggregate) -> tuple[int]:
    return (
        aggregate_count(
            aggregate.ingress_flow_count, aggregate.egress_flow_count, aggregate.unknown_direction_flow_count
        ),
    )


class _Lookup(Generic[_Message_co, _Decoded]):
    """Sub-messages decoded once per distinct serialized value; the new ones of a batch are parsed together.

    `parse` reads a `flowbatch` list message (`items`) of that sub-message; `decode` turns one into its value.
    """

    def __init__(
        self, parse: Callable[[bytes], _Items[_Message_co]], decode: Callable[[_Message_co], _Decoded]
    ) -> None:
        self.parse, self.decode = parse, decode
        self.known: dict[bytes, _Decoded] = {}

    def all(self, values: Sequence[bytes]) -> list[_Decoded]:
        """The decoded values, in order."""
        known = self.known
        missing = set(values).difference(known)
        if missing:
            if len(known) + len(missing) > _LOOKUP_LIMIT:
                known.clear()
                missing = set(values)
            new = list(missing)
            decode = self.decode
            for data, message in zip(new, self.parse(_framed(new)).items, strict=True):
                known[data] = decode(message)
        return list(map(known.__getitem__, values))


class _Items(Protocol[_Message_co]):
    @property
    def items(self) -> Sequence[_Message_co]: ...
