"""Every decision about what a Hubble flow means, made once for the file importer and the gRPC decoder.

The three readers of a flow (`files` for JSON dicts, `fast` for msgspec structs, `stream` for
protobuf messages) only take values out of their representation and validate their types; what
those values mean is decided here, from primitive values, so the readers cannot drift apart:

| decision                      | here                                                                 |
|-------------------------------|----------------------------------------------------------------------|
| verdict, direction, protocol  | `enums.VERDICT_ROWS`, `DIRECTION_ROWS`, `PROTOCOL_ROWS` (name or number) |
| socket events are no flows    | `enums.SOCK_FLOW_TYPES` (counted as `SOCKET_EVENT`)                  |
| drop reason                   | `drop_reason` (`enums.DROP_REASON_NAMES`): the name, by name or number |
| reply or request              | `reply_flag` per flow, `ReplyTracker` across the flows of a connection |
| ports                         | `port`: 0 (left out by protojson) is no port                          |
| endpoint kind, labels, owner  | `endpoint` (with `label_info`)                                        |
| policies, aggregate count     | `policy_entry`, `aggregate_count`                                     |
| Service, node                 | `service_name`, `node_name`                                           |
| HTTP request                  | `http_method`, `http_path` (`http_paths` for a column)                |
| lost events                   | `count_lost_events`                                                   |

`tests/sources/test_decoding_parity.py` feeds the same flows through all three readers and compares the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.sources.columns import KIND_INDEX, Labels, sorted_labels, split_label
from synth.sources.hubble.enums import DROP_REASON_NAMES, DROPPED_ROW, L7_RESPONSES
from synth.sources.interface import SourceStats

SOCKET_EVENT = "socket-translation event"  # how socket-LB events are counted (other_events)
LOST_EVENTS = "lost_events"
NODE_STATUS = "node_status"
MAX_PORT = 65535
# (proto field, lowerCamelCase JSON name, stored prefix) of the policy lists of a flow, in stored order.
POLICY_LISTS = (
    ("egress_allowed_by", "egressAllowedBy", "egress-allowed"),
    ("ingress_allowed_by", "ingressAllowedBy", "ingress-allowed"),
    ("egress_denied_by", "egressDeniedBy", "egress-denied"),
    ("ingress_denied_by", "ingressDeniedBy", "ingress-denied"),
)

_NS_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
_WORLD = frozenset({"world", "world-ipv4", "world-ipv6"})
_KIND_BY_IDENTITY = {
    1: "host",
    2: "world",
    4: "health",
    6: "remote-node",
    7: "kube-apiserver",
    8: "ingress",
    9: "world",
    10: "world",
}
_LOCAL_SCOPE = 1 << 24


# ------------------------------------------------------------------------------------------------ flow fields


def drop_reason(desc: str | int | None, verdict_row: int, deprecated: int) -> str | None:
    """The stored drop reason: the DropReason name, whether the producer printed it by name or number.

    `desc` is `drop_reason_desc` (absent: None; gRPC: 0); DROP_REASON_UNKNOWN is no reason; an
    unknown number is kept as its digits. Without a reason, a dropped flow falls back to the
    deprecated numeric `drop_reason` (same numbering); other verdicts ignore that field.
    """
    name = DROP_REASON_NAMES[desc]
    if name is None and deprecated and verdict_row == DROPPED_ROW:
        return DROP_REASON_NAMES[deprecated]
    return name


def http_method(method: str | None) -> str | None:
    """The stored HTTP method: upper case, none for an empty one."""
    return method.upper() if method else None


@lru_cache(maxsize=65536)
def http_path(url: str | None) -> str | None:
    """The stored HTTP path of a request's URL: its path and query, as an HTTP rule matches them
    (no scheme, host or fragment; an empty path is `/`); none without a URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 host: the path is what follows the authority
        parts = urlsplit("/" + url.split("://", 1)[-1].partition("/")[2])
    path = parts.path or "/"
    if not path.startswith("/"):  # `example.com/x` without a scheme
        path = "/" + path.partition("/")[2] if "/" in path else "/"
    return f"{path}?{parts.query}" if parts.query else path


def http_paths(urls: pa.Array) -> pa.Array:
    """`http_path` of a column of URLs, decided once per distinct URL."""
    encoded = pc.dictionary_encode(urls)
    paths = pa.array([http_path(url) for url in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(paths, encoded.indices)


def reply_flag(is_reply: bool | None, reply: bool, l7_type: str | int | None, syn: bool, ack: bool) -> bool | None:
    """Whether a flow is a reply: `is_reply` when the producer set it, else what else tells.

    The deprecated `reply` is only ever true for known replies; an L7 RESPONSE answers; a TCP SYN
    alone opens a connection and a SYN-ACK answers one (`syn`/`ack`: the TCP flags, False for other
    protocols). None: unknown, left to `ReplyTracker`.
    """
    if is_reply is not None:
        return is_reply
    if reply or l7_type in L7_RESPONSES:
        return True
    if syn:
        return ack
    return None


def port(value: int | None) -> int | None:
    """A port as stored: 0 is no port (protojson leaves zero out, so it cannot be told from absent)."""
    return value or None


def aggregate_count(ingress: int, egress: int, unknown_direction: int) -> int:
    """How many flows one record stands for: the sum of an `aggregate`'s counts, and never less than 1."""
    return ingress + egress + unknown_direction or 1


def policy_entry(list_prefix: str, kind: str, namespace: str, name: str) -> str:
    """One entry of the policies column: `egress-allowed:CiliumNetworkPolicy:shop/name`."""
    return f"{list_prefix}:{kind or 'Policy'}:{namespace}/{name}"


def service_name(namespace: str, name: str) -> str | None:
    """`namespace/name` of the destination Service, or None without a name."""
    return f"{namespace}/{name}" if name else None


def node_name(flow_node: str, envelope_node: str) -> str | None:
    """The node that observed a flow: the flow's own, else the response envelope's."""
    return flow_node or envelope_node or None


def count_lost_events(stats: SourceStats, node: str, lost: int) -> None:
    """Count one lost-events record: events lost in total and per node (an empty name for unknown)."""
    stats.lost_events += lost
    stats.lost_by_node[node] += lost
    stats.other_events[LOST_EVENTS] += 1


# ------------------------------------------------------------------------------------------------ endpoints


@dataclass(frozen=True, slots=True)
class LabelInfo:
    """What one endpoint's identity labels say: pod labels, namespace labels, reserved kind."""

    pod: Labels
    namespace: Labels
    reserved_kind: str | None
    has_cidr: bool


@lru_cache(maxsize=16384)
def label_info(labels: tuple[str, ...]) -> LabelInfo:
    """Split Cilium `source:key=value` labels. Cached: label lists repeat across flows."""
    pod: list[tuple[str, str]] = []
    namespace: list[tuple[str, str]] = []
    reserved: set[str] = set()
    has_cidr = False
    for label in labels:
        source, sep, rest = label.partition(":")
        if not sep:
            source, rest = "k8s", label
        if source == "k8s":
            key, value = split_label(rest)
            if key.startswith(_NS_LABEL_PREFIX):
                namespace.append((key[len(_NS_LABEL_PREFIX) :], value))
            elif key != "io.kubernetes.pod.namespace" and not key.startswith("io.cilium.k8s.policy."):
                pod.append((key, value))
        elif source == "reserved":
            reserved.add(split_label(rest)[0])
        elif source in ("cidr", "fqdn", "cidrgroup"):
            has_cidr = True
    return LabelInfo(sorted_labels(pod), sorted_labels(namespace), _reserved_kind(reserved), has_cidr)


def _reserved_kind(reserved: set[str]) -> str | None:
    # kube-apiserver is combined with host/remote-node/world: it wins, it is the service that matters.
    for name, kind in (
        ("kube-apiserver", "kube-apiserver"),
        ("host", "host"),
        ("remote-node", "remote-node"),
        ("health", "health"),
        ("ingress", "ingress"),
    ):
        if name in reserved:
            return kind
    if reserved & _WORLD:
        return "world"
    return None


def endpoint_kind(info: LabelInfo, identity: int, namespace: str | None, pod_name: str | None) -> str:
    """The FLOW_SCHEMA kind of an endpoint from its labels, then its names, then its identity."""
    if info.reserved_kind is not None:
        return info.reserved_kind
    if namespace or pod_name:
        return "pod"
    if identity in _KIND_BY_IDENTITY:
        return _KIND_BY_IDENTITY[identity]
    if info.has_cidr or identity >= _LOCAL_SCOPE:
        return "world"
    return "unknown"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a flow as stored: kind (a KIND_INDEX row), names, owner and labels."""

    kind: int
    namespace: str | None
    pod: str | None
    workload: str | None
    labels: Labels
    ns_labels: Labels


@lru_cache(maxsize=65536)
def endpoint(
    identity: int, namespace: str, pod_name: str, labels: tuple[str, ...], owner_kind: str, owner_name: str
) -> Endpoint:
    """An endpoint from its Hubble fields ("" for absent); the owner is the first of its `workloads`.

    Cached: the same endpoints come back flow after flow.
    """
    info = label_info(labels)
    namespace_or_none, pod = namespace or None, pod_name or None
    workload = None
    if owner_name:
        workload = f"{owner_kind}/{owner_name}" if owner_kind else owner_name
    kind = endpoint_kind(info, identity, namespace_or_none, pod)
    return Endpoint(KIND_INDEX[kind], namespace_or_none, pod, workload, info.pod, info.namespace)


NO_ENDPOINT = endpoint(0, "", "", (), "", "")


# ------------------------------------------------------------------------------------------------ connections


class ConnectionColumns(Protocol):
    """The columns `ReplyTracker.resolve` reads and fills (the gRPC decoder's column lists)."""

    is_reply: list[bool | None]
    src_ip: list[str | None]
    dst_ip: list[str | None]
    src_port: list[int | None]
    dst_port: list[int | None]


_TUPLE = ("a_ip", "a_port", "b_ip", "b_port")
_MERGE_ROWS = 65_536  # tuples learned before the first merge


class ReplyTracker:
    """Tells replies from requests for flows whose producer did not say (`is_reply` absent).

    Older agents leave `is_reply` out on many trace points. A connection is known from its other
    packets: a flow is a request when its own 4-tuple was seen as a request, a reply when the
    reverse 4-tuple was (a request match wins). Known tuples are remembered across the tables of
    one tracker (one block of lines when a file is read in blocks; one collection for the gRPC
    decoder), up to a bounded number, the oldest forgotten first. All of it is Arrow joins: no
    Python runs per flow.
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self._known: pa.Table | None = None  # distinct tuples, oldest first, at most `limit`
        self._fresh: list[pa.Table] = []  # tuples learned since, distinct within each table
        self._fresh_rows = 0

    @property
    def requests(self) -> pa.Table | None:
        """The request 4-tuples known (a tuple may be listed more than once)."""
        tables = [*([self._known] if self._known is not None else []), *self._fresh]
        return pa.concat_tables(tables) if tables else None

    def resolve_table(self, table: pa.Table) -> pa.Table:
        """The table with `is_reply` filled where it is null and the connection's direction is known."""
        replies = table.column("is_reply")
        has_port = pc.is_valid(table.column("src_port"))
        src_ip, dst_ip = (pc.fill_null(table.column(c), "") for c in ("src_ip", "dst_ip"))
        src_port, dst_port = (pc.fill_null(table.column(c), -1) for c in ("src_port", "dst_port"))
        reply = pc.fill_null(replies, False)
        learned = pa.table({
            "a_ip": pc.if_else(reply, dst_ip, src_ip), "a_port": pc.if_else(reply, dst_port, src_port),
            "b_ip": pc.if_else(reply, src_ip, dst_ip), "b_port": pc.if_else(reply, src_port, dst_port),
        }).filter(pc.and_(pc.is_valid(replies), has_port))
        self._learn(learned)
        unknown = pc.and_(pc.is_null(replies), has_port)
        requests = self.requests
        if requests is None or not pc.any(unknown).as_py():
            return table
        rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
        forward = _matching(pa.table([src_ip, src_port, dst_ip, dst_port, rows], names=[*_TUPLE, "row"]), unknown,
                            requests)
        backward = _matching(pa.table([dst_ip, dst_port, src_ip, src_port, rows], names=[*_TUPLE, "row"]), unknown,
                             requests)
        marks = np.zeros(table.num_rows, np.int8)
        marks[backward] = 2
        marks[forward] = 1
        filled = pc.if_else(pa.array(marks == 1), False, pc.if_else(pa.array(marks == 2), True, replies))
        return table.set_column(table.schema.get_field_index("is_reply"), "is_reply", filled)

    def resolve(self, cols: ConnectionColumns) -> None:
        """`resolve_table` for column lists, filled in place."""
        table = pa.table({
            "is_reply": pa.array(cols.is_reply, pa.bool_()),
            "src_ip": pa.array(cols.src_ip, pa.string()), "dst_ip": pa.array(cols.dst_ip, pa.string()),
            "src_port": pa.array(cols.src_port, pa.int32()), "dst_port": pa.array(cols.dst_port, pa.int32()),
        })
        cols.is_reply[:] = self.resolve_table(table).column("is_reply").to_pylist()

    def _learn(self, learned: pa.Table) -> None:
        """Remember a table's tuples. They are merged into the known ones (made distinct, the oldest beyond
        `limit` forgotten) once those learned since add up to a quarter of them: each tuple is hashed a
        bounded number of times however long the tracker lives (a collection: days), not once per table."""
        if not learned.num_rows:
            return
        learned = _distinct(learned)
        self._fresh.append(learned)
        self._fresh_rows += learned.num_rows
        known_rows = 0 if self._known is None else self._known.num_rows
        if self._fresh_rows * 4 < max(known_rows, _MERGE_ROWS):
            return
        known = _distinct(pa.concat_tables([*([self._known] if self._known is not None else []), *self._fresh]))
        if known.num_rows > self.limit:
            known = known.slice(known.num_rows - self.limit)
        self._known = known.combine_chunks()
        self._fresh, self._fresh_rows = [], 0


def _distinct(tuples: pa.Table) -> pa.Table:
    """Each 4-tuple once, in the order first seen."""
    return tuples.group_by(list(_TUPLE), use_threads=False).aggregate([])


def _matching(probe: pa.Table, unknown: pa.Array, requests: pa.Table) -> np.ndarray:
    """Rows of `probe` (where `unknown`) whose 4-tuple is among `requests`."""
    found = probe.filter(unknown).join(requests, keys=list(_TUPLE), join_type="left semi", use_threads=False)
    return np.asarray(found.column("row").to_numpy())
