"""Flows to edges: who talks to whom, on which port, how often, first and last seen.

Flows come in grouped (one row per distinct combination of their columns, with the number of rows,
the summed count and the first and last time): the embedded engine groups a whole window of the
store at once (`synth.app.engine`), an in-memory batch is taken as it is. This module does no I/O.
Grouped rows are reduced with Arrow group-bys to partials keyed by raw endpoints (namespace, owner,
labels, address); partials merge by sum, min, max and union, so memory follows the number of
distinct endpoint pairs, never the number of flows.
Identities (selectors) are then chosen once for every workload, and the partial rows collapse
into label-level edges in `EDGE_SCHEMA`.

Replies never make edges. The port is the destination's (backend) port. Policy drops become
edges with `allowed` false (denied attempts); datapath drops and unknown verdicts are counted.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.base.config import Settings
from synth.core.identity import Identity, Labels, owner_of_pod, resolve_identities
from synth.core.interning import LabelSets
from synth.store.schema import ALLOWED_VERDICTS, EDGE_SCHEMA, POLICY_DROP_REASONS

FLOW_COLUMNS = (
    "time",
    "count",
    "verdict",
    "drop_reason",
    "direction",
    "is_reply",
    "protocol",
    "dst_port",
    "src_ip",
    "src_kind",
    "src_namespace",
    "src_pod",
    "src_workload",
    "src_labels",
    "dst_ip",
    "dst_kind",
    "dst_namespace",
    "dst_pod",
    "dst_workload",
    "dst_labels",
    "dst_names",
    "dst_service",
    "dns_query",
    "dns_answers",
)
HTTP_COLUMNS = ("http_method", "http_path")
"""The HTTP request of an L7 flow: read only when HTTP rules are asked for (`--l7`)."""
GROUPED_KEYS = tuple(name for name in FLOW_COLUMNS if name not in ("time", "count"))
"""What store engines group flows by before `Accumulator.add_grouped` (labels as `LabelSets` ids)."""
_LABEL_COLUMNS = ("src_labels", "dst_labels", "src_ns_labels", "dst_ns_labels")
_GROUPED_INPUT = frozenset({*GROUPED_KEYS, *HTTP_COLUMNS, "count", "src_ns_labels", "dst_ns_labels"})
_SIDE_KEYS = ("kind", "namespace", "group", "labels_key", "addr")
GROUP_KEYS = (
    *(f"src_{k}" for k in _SIDE_KEYS),
    *(f"dst_{k}" for k in _SIDE_KEYS),
    "protocol",
    "dst_port",
    "allowed",
    "verdict",
    "direction",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class AggregateStats:
    """What aggregation read and what it left out, for the summary and the report."""

    flows: int = 0
    replies: int = 0
    datapath_drops: int = 0
    unjudged: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    hours: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Partial:
    """One raw endpoint pair. Counts are kept per observation side (egress, ingress, unknown):
    both ends of a connection may report it (Hubble at each node, Calico `reporter` src and dst),
    so the pair's count is the largest side's, never their sum."""

    first: int
    last: int
    src_pods: set[str]
    dst_pods: set[str]
    services: set[str]
    verdicts: dict[str, Counter[str]]

    @property
    def count(self) -> int:
        return max(sum(counter.values()) for counter in self.verdicts.values())

    def verdict_counts(self) -> Counter[str]:
        merged: Counter[str] = Counter()
        for counter in self.verdicts.values():
            for verdict, count in counter.items():
                merged[verdict] = max(merged[verdict], count)
        return merged


Side = Literal["src", "dst"]


@dataclass(frozen=True, slots=True, order=True)
class RawEndpoint:
    """One end of a flow before identities are chosen: a pod's namespace, owner group and labels (by
    key), or the kind and address of anything else."""

    kind: str
    namespace: str | None
    group: str
    labels_key: str
    addr: str | None


@dataclass(frozen=True, slots=True, order=True)
class PairKey:
    """A distinct raw endpoint pair with its protocol, port and whether the flows were allowed."""

    src: RawEndpoint
    dst: RawEndpoint
    protocol: str
    port: int | None
    allowed: bool


@dataclass(frozen=True, slots=True)
class EdgeEnd:
    """One end of an edge: a pod selector in a namespace (with the workloads and pods behind it),
    or a kind and an address (`/32`, `/128`) for anything that is not a pod."""

    kind: str
    namespace: str | None
    selector: str
    workloads: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()

    def order(self) -> tuple[str, str, str]:
        """Sort key (a missing namespace sorts first)."""
        return (self.kind, self.namespace or "", self.selector)


@dataclass(frozen=True, slots=True)
class Edge:
    """One label-level dependency: who talked to whom, on which port, how often, first and last seen.

    `allowed` is false for denied attempts (policy drops). `verdicts` counts flows per verdict.
    """

    src: EdgeEnd
    dst: EdgeEnd
    protocol: str
    port: int | None
    allowed: bool
    count: int
    first_ns: int
    last_ns: int
    dst_names: tuple[str, ...] = ()
    dst_services: tuple[str, ...] = ()
    verdicts: tuple[tuple[str, int], ...] = ()
    requests: tuple[tuple[str, str, int], ...] = ()  # HTTP (method, path, flows), read only for HTTP rules

    @property
    def first_seen(self) -> datetime:
        """The first flow's time (UTC, to the microsecond)."""
        return datetime_of(self.first_ns)

    @property
    def last_seen(self) -> datetime:
        """The last flow's time (UTC, to the microsecond)."""
        return datetime_of(self.last_ns)

    def end(self, side: Side) -> EdgeEnd:
        """`src` or `dst`."""
        return self.src if side == "src" else self.dst

    def port_text(self) -> str:
        """`TCP/80`, or the protocol alone when there is no port."""
        return self.protocol if self.port is None else f"{self.protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class EdgeSet:
    """Edges (typed, and as an Arrow table in EDGE_SCHEMA) plus what generation needs beside them.

    `identities` maps (namespace, selector key) to the chosen Identity; `names` maps an external
    address to the DNS names seen for it; `pod_labels` maps (namespace, pod) to its labels, so
    a selector can be checked against the pods whose flows made it.
    """

    edges: tuple[Edge, ...]
    identities: dict[tuple[str, str], Identity]
    names: dict[str, tuple[str, ...]]
    pod_labels: dict[tuple[str, str], Labels]
    stats: AggregateStats

    @property
    def table(self) -> pa.Table:
        """The edges in EDGE_SCHEMA, in order (for CSV and JSON, and other engines to compare with)."""
        return edges_table(self.edges)


def datetime_of(ns: int) -> datetime:
    """Epoch nanoseconds as a UTC datetime (to the microsecond, as far as datetime goes)."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def edges_table(edges: Sequence[Edge]) -> pa.Table:
    """Typed edges as an Arrow table in EDGE_SCHEMA."""
    rows = [
        {
            **{f"{side}_{part}": getattr(edge.end(side), part) for side in ("src", "dst")
               for part in ("kind", "namespace", "selector", "workloads", "pods")},
            "protocol": edge.protocol,
            "port": edge.port,
            "allowed": edge.allowed,
            "count": edge.count,
            "first_seen": edge.first_ns,
            "last_seen": edge.last_ns,
            "dst_names": edge.dst_names,
            "dst_services": edge.dst_services,
            "verdicts": edge.verdicts,
        }
        for edge in edges
    ]
    return pa.Table.from_pylist(rows, schema=EDGE_SCHEMA)


class Accumulator:
    """Merges grouped flows into partials; holds only distinct endpoint pairs and label sets.

    Flows come in grouped (`add_grouped`: one row per distinct combination of `GROUPED_KEYS`, with
    `rows`, the summed `count` and the first and last time), whether a store engine grouped a whole
    window at once or `add` took one in-memory batch as it is. Any engine that produces the same
    grouped rows (`merge_row`) and endpoint facts (`remember_endpoint`, `remember_name`) gets the same
    edges from `finish` (the Spark engine does).
    """

    def __init__(self, namespaces: Sequence[str] | None) -> None:
        self.namespaces = set(namespaces) if namespaces else None
        self.partials: dict[PairKey, _Partial] = {}
        self.label_sets = LabelSets()
        self.labels: dict[str, Labels] = self.label_sets.labels
        self.groups: dict[tuple[str, str], set[str]] = {}
        self.pod_labels: dict[tuple[str, str], str] = {}
        self._pod_seen: dict[tuple[str, str], tuple[int, str]] = {}
        self.namespace_labels: dict[str, tuple[int, str]] = {}
        self.names: dict[str, set[str]] = {}
        self.http: dict[PairKey, dict[str, Counter[tuple[str, str]]]] = {}
        self.stats = AggregateStats()

    def add(self, batch: pa.RecordBatch) -> None:
        """Fold one batch of FLOW_SCHEMA flows in, each flow a group of its own."""
        times = batch.column("time").cast(pa.int64())
        self.count_hours(times)
        columns = {name: batch.column(name) for name in batch.schema.names if name in _GROUPED_INPUT}
        for name in _LABEL_COLUMNS:
            if name in columns:
                columns[name] = self.label_sets.encode(columns[name])
        ones = pa.array(np.ones(batch.num_rows, np.int64))
        self.add_grouped(pa.table({**columns, "rows": ones, "time_min": times, "time_max": times}))

    def count_hours(self, times: pa.Array) -> None:
        """The hours (from the epoch) that flows were seen in, from their times in epoch nanoseconds."""
        self.stats.hours.update(hours_of(times))

    def add_grouped(self, table: pa.Table) -> None:
        """Fold grouped flows in: `GROUPED_KEYS` (labels as `LabelSets` ids of `label_sets`, namespace
        labels too when present), `rows` (stored rows), `count` (flows) and `time_min`/`time_max`
        (epoch nanoseconds)."""
        if table.num_rows == 0:
            return
        table = _plain_strings(table)
        self._count_window(table)
        if "dns_answers" in table.column_names:
            self.collect_names(table)
        if "src_ns_labels" in table.column_names:
            self._collect_namespace_labels(table)
        for side in ("src", "dst"):
            table = self._add_side_columns(table, side)
        table = self._requests(table)
        if table.num_rows == 0:
            return
        if "http_method" in table.column_names:
            self._collect_http(table)
        grouped = table.group_by(list(GROUP_KEYS), use_threads=False).aggregate(
            [
                ("count", "sum"),
                ("time_min", "min"),
                ("time_max", "max"),
                ("src_pod", "distinct"),
                ("dst_pod", "distinct"),
                ("dst_service", "distinct"),
            ]
        )
        grouped = grouped.rename_columns(
            [{"time_min_min": "time_min", "time_max_max": "time_max"}.get(n, n) for n in grouped.column_names]
        )
        for row in grouped.to_pylist():
            self.merge_row(row)

    def _count_window(self, table: pa.Table) -> None:
        stats = self.stats
        stats.flows += _total(table.column("rows"))
        first, last = pc.min(table.column("time_min")).as_py(), pc.max(table.column("time_max")).as_py()
        stats.first_ns = first if stats.first_ns is None else min(stats.first_ns, first)
        stats.last_ns = last if stats.last_ns is None else max(stats.last_ns, last)

    def _requests(self, table: pa.Table) -> pa.Table:
        """Requests that were allowed or dropped by policy (in the namespaces asked for), with `allowed`;
        replies, datapath drops and unknown verdicts are counted and left out."""
        stats, rows = self.stats, table.column("rows")
        reply = pc.fill_null(table.column("is_reply"), False)
        stats.replies += _total(rows, reply)
        table = table.filter(pc.invert(reply))
        rows = table.column("rows")
        verdict = table.column("verdict")
        allowed = pc.is_in(verdict, pa.array(sorted(ALLOWED_VERDICTS)))
        drop_reason = pc.fill_null(table.column("drop_reason"), "")
        dropped = pc.equal(verdict, "dropped")
        policy_drop = pc.and_(dropped, pc.is_in(drop_reason, pa.array(sorted(POLICY_DROP_REASONS))))
        stats.datapath_drops += _total(rows, pc.and_(dropped, pc.invert(policy_drop)))
        stats.unjudged += _total(rows, pc.invert(pc.or_(allowed, dropped)))
        table = table.append_column("allowed", allowed).filter(pc.or_(allowed, policy_drop))
        if self.namespaces is not None:
            wanted = pa.array(sorted(self.namespaces))
            table = table.filter(
                pc.or_(pc.is_in(table.column("src_namespace"), wanted), pc.is_in(table.column("dst_namespace"), wanted))
            )
        return table

    def _collect_http(self, table: pa.Table) -> None:
        """The HTTP requests (method, path) of each pair, per observation side."""
        table = table.filter(pc.is_valid(table.column("http_method")))
        if table.num_rows == 0:
            return
        path = pc.fill_null(table.column("http_path"), "/")
        keys = [*GROUP_KEYS, "__method", "__path"]
        frame = table.select(list(GROUP_KEYS)).append_column("__method", table.column("http_method"))
        frame = frame.append_column("__path", path).append_column("count", table.column("count"))
        grouped = frame.group_by(keys, use_threads=False).aggregate([("count", "sum")])
        for row in grouped.to_pylist():
            src, dst = (RawEndpoint(*(row[f"{side}_{k}"] for k in _SIDE_KEYS)) for side in ("src", "dst"))
            key = PairKey(src, dst, row["protocol"], row["dst_port"], row["allowed"])
            self.http.setdefault(key, {}).setdefault(row["direction"], Counter())[
                (row["__method"], row["__path"])] += row["count_sum"]

    def collect_names(self, table: pa.Table | pa.RecordBatch) -> None:
        """Remember names for addresses: from DNS answers (query → ips) and from flows' destination names
        (a store engine finds them on each batch with `name_pairs`, and groups the flows without the DNS
        columns)."""
        self.remember_names(name_pairs(table))

    def remember_names(self, pairs: Iterable[tuple[str, str]]) -> None:
        """`remember_name` for each (address, name)."""
        for address, name in pairs:
            self.remember_name(address, name)

    def _collect_namespace_labels(self, table: pa.Table) -> None:
        """Each namespace's labels (sources that carry them: Cilium, Calico), as first seen in time."""
        for side in ("src", "dst"):
            ids = table.column(f"{side}_ns_labels")
            has = pc.and_(pc.is_valid(table.column(f"{side}_namespace")), pc.not_equal(ids, 0))
            subset = pa.table(
                {"ns": table.column(f"{side}_namespace"), "id": ids, "first": table.column("time_min")}
            ).filter(has)
            distinct = subset.group_by(["ns", "id"], use_threads=False).aggregate([("first", "min")])
            for namespace, found, first in zip(
                *(distinct.column(c).to_pylist() for c in ("ns", "id", "first_min")), strict=True
            ):
                seen = (first, self.label_sets.keys[found])
                if namespace not in self.namespace_labels or seen < self.namespace_labels[namespace]:
                    self.namespace_labels[namespace] = seen

    def remember_name(self, address: str, name: str) -> None:
        """A DNS name seen for an address (from an answer, or a flow's destination names)."""
        self.names.setdefault(address, set()).add(name.rstrip("."))

    def remember_endpoint(
        self, namespace: str | None, group: str, labels_key: str, pod: str | None, last_ns: int | None = None
    ) -> None:
        """A pod seen with these labels (by key) in this owner group; a pod seen with several label
        sets keeps those of its last flow (`last_ns`; without it, the last call's)."""
        self.groups.setdefault((namespace or "", group), set()).add(labels_key)
        if not pod:
            return
        pod_key = (namespace or "", pod)
        seen = (last_ns if last_ns is not None else 0, labels_key)
        if last_ns is None or pod_key not in self._pod_seen or seen > self._pod_seen[pod_key]:
            self._pod_seen[pod_key] = seen
            self.pod_labels[pod_key] = labels_key

    def _add_side_columns(self, table: pa.Table, side: str) -> pa.Table:
        kind = table.column(f"{side}_kind").combine_chunks()
        is_pod = _plain(pc.equal(kind, "pod"))
        keys = pc.take(pa.array(self.label_sets.keys, pa.string()), table.column(f"{side}_labels").combine_chunks())
        key = _plain(pc.if_else(is_pod, keys, ""))
        pods = table.column(f"{side}_pod").combine_chunks()
        group = pc.coalesce(table.column(f"{side}_workload").combine_chunks(), _owners(pods))
        group = _plain(pc.if_else(is_pod, pc.fill_null(group, ""), ""))
        addr = pc.if_else(is_pod, pa.scalar(None, pa.string()), table.column(f"{side}_ip"))
        namespace = pc.if_else(is_pod, table.column(f"{side}_namespace"), pa.scalar(None, pa.string()))
        table = table.set_column(table.schema.get_field_index(f"{side}_namespace"), f"{side}_namespace", namespace)
        self._remember_groups(table, side, group, key, is_pod)
        return (
            table.append_column(f"{side}_labels_key", key)
            .append_column(f"{side}_group", group)
            .append_column(f"{side}_addr", addr)
        )

    def _remember_groups(self, table: pa.Table, side: str, groups: pa.Array, keys: pa.Array, is_pod: pa.Array) -> None:
        subset = pa.table(
            {
                "ns": table.column(f"{side}_namespace"),
                "group": groups,
                "key": keys,
                "pod": table.column(f"{side}_pod"),
                "last": table.column("time_max"),
            }
        ).filter(is_pod)
        distinct = subset.group_by(["ns", "group", "key", "pod"], use_threads=False).aggregate([("last", "max")])
        for ns, group, key, pod, last in zip(
            *(distinct.column(c).to_pylist() for c in ("ns", "group", "key", "pod", "last_max")), strict=True
        ):
            self.remember_endpoint(ns, group, key, pod, last)

    def merge_row(self, row: dict[str, Any]) -> None:
        """Fold one grouped row (GROUP_KEYS plus count_sum, time_min/max in epoch nanoseconds and the
        distinct lists) in."""
        src, dst = (RawEndpoint(*(row[f"{side}_{k}"] for k in _SIDE_KEYS)) for side in ("src", "dst"))
        key = PairKey(src, dst, row["protocol"], row["dst_port"], row["allowed"])
        partial = self.partials.get(key)
        if partial is None:
            partial = self.partials[key] = _Partial(row["time_min"], row["time_max"], set(), set(), set(), {})
        partial.first = min(partial.first, row["time_min"])
        partial.last = max(partial.last, row["time_max"])
        partial.src_pods.update(p for p in row["src_pod_distinct"] if p)
        partial.dst_pods.update(p for p in row["dst_pod_distinct"] if p)
        partial.services.update(s for s in row["dst_service_distinct"] if s)
        partial.verdicts.setdefault(row["direction"], Counter())[row["verdict"]] += row["count_sum"]


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _total(rows: pa.Array | pa.ChunkedArray, mask: pa.Array | pa.ChunkedArray | None = None) -> int:
    """The sum of `rows` (where `mask` holds)."""
    return int(pc.sum(rows if mask is None else pc.filter(rows, mask)).as_py() or 0)


def _plain_strings(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns as plain strings (the grouped tables are small)."""
    for position, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(position, table.field(position).name, column.cast(column.type.value_type))
    return table


def _owners(pods: pa.Array) -> pa.Array:
    """The owner guessed from each pod name, computed once per distinct name."""
    encoded = pods.dictionary_encode()
    owners = pa.array([owner_of_pod(p) for p in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(owners, encoded.indices)


def aggregate_batches(
    batches: Iterable[pa.RecordBatch], settings: Settings, *, namespaces: Sequence[str] | None = None
) -> EdgeSet:
    """Edges from any stream of FLOW_SCHEMA batches (the store's, read by `synth.app.flows`, or in memory)."""
    accumulator = Accumulator(namespaces)
    for batch in batches:
        accumulator.add(batch.select(list(FLOW_COLUMNS)) if batch.schema.names != list(FLOW_COLUMNS) else batch)
    return finish(accumulator, settings)


@dataclass(slots=True)
class _Draft:
    """An edge being merged from the partials of its endpoint pairs."""

    first: int
    last: int
    count: int = 0
    src_workloads: set[str] = field(default_factory=set)
    dst_workloads: set[str] = field(default_factory=set)
    src_pods: set[str] = field(default_factory=set)
    dst_pods: set[str] = field(default_factory=set)
    dst_names: set[str] = field(default_factory=set)
    dst_services: set[str] = field(default_factory=set)
    verdicts: Counter[str] = field(default_factory=Counter)
    directions: set[str] = field(default_factory=set)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)

    def absorb(self, other: _Draft) -> None:
        """Take another draft's pods, names and window in (its count is the caller's business)."""
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        for name in ("src_workloads", "dst_workloads", "src_pods", "dst_pods", "dst_names", "dst_services"):
            getattr(self, name).update(getattr(other, name))


@dataclass(frozen=True, slots=True)
class _EdgeKey:
    src: tuple[str, str | None, str]  # kind, namespace, selector
    dst: tuple[str, str | None, str]
    protocol: str
    port: int | None
    allowed: bool

    def order(self) -> tuple[Any, ...]:
        """Sorted by ends, protocol, port, allowed; a missing namespace or port sorts last."""
        src, dst = ((kind, namespace is None, namespace or "", sel) for kind, namespace, sel in (self.src, self.dst))
        return (src, dst, self.protocol, self.port is None, self.port or 0, self.allowed)


def finish(acc: Accumulator, settings: Settings) -> EdgeSet:
    """Choose identities for every workload seen and collapse the partials into edges."""
    group_labels = {group: [acc.labels[k] for k in sorted(keys)] for group, keys in acc.groups.items()}
    identities = resolve_identities(group_labels, settings)
    drafts: dict[_EdgeKey, _Draft] = {}
    for key, partial in acc.partials.items():
        src, src_workloads = _end(key.src, identities)
        dst, dst_workloads = _end(key.dst, identities)
        edge_key = _EdgeKey(src, dst, key.protocol, key.port, key.allowed)
        draft = drafts.setdefault(edge_key, _Draft(partial.first, partial.last))
        draft.directions.update(partial.verdicts)
        draft.count += partial.count
        draft.first = min(draft.first, partial.first)
        draft.last = max(draft.last, partial.last)
        draft.src_workloads.update(src_workloads)
        draft.dst_workloads.update(dst_workloads)
        draft.src_pods.update(partial.src_pods)
        draft.dst_pods.update(partial.dst_pods)
        draft.dst_services.update(partial.services)
        draft.verdicts.update(partial.verdict_counts())
        if key in acc.http:
            draft.requests.update(request_counts(acc.http[key]))
        if key.dst.addr:
            draft.dst_names.update(acc.names.get(key.dst.addr, ()))
    _fold_egress_of_denied(drafts)
    edges = tuple(_edge(key, drafts[key]) for key in sorted(drafts, key=_EdgeKey.order))
    by_selector = {(i.namespace, i.key): i for i in identities.values()}
    pod_labels = {pod: acc.labels[key] for pod, key in acc.pod_labels.items()}
    names = {ip: tuple(sorted(found)) for ip, found in acc.names.items()}
    return EdgeSet(edges, by_selector, names, pod_labels, acc.stats)


def _edge(key: _EdgeKey, draft: _Draft) -> Edge:
    def end(side: tuple[str, str | None, str], workloads: set[str], pods: set[str]) -> EdgeEnd:
        kind, namespace, selector = side
        return EdgeEnd(kind, namespace, selector, tuple(sorted(workloads)), tuple(sorted(pods)))

    return Edge(
        end(key.src, draft.src_workloads, draft.src_pods),
        end(key.dst, draft.dst_workloads, draft.dst_pods),
        key.protocol,
        key.port,
        key.allowed,
        draft.count,
        draft.first,
        draft.last,
        tuple(sorted(draft.dst_names)),
        tuple(sorted(draft.dst_services)),
        tuple(sorted(draft.verdicts.items())),
        tuple(sorted((method, path, n) for (method, path), n in draft.requests.items())),
    )


def request_counts(sides: dict[str, Counter[tuple[str, str]]]) -> Counter[tuple[str, str]]:
    """HTTP requests (method, path) of one pair and their number, the larger observation side's (both
    ends may report a request)."""
    merged: Counter[tuple[str, str]] = Counter()
    for counter in sides.values():
        for request, count in counter.items():
            merged[request] = max(merged[request], count)
    return merged


def _fold_egress_of_denied(drafts: dict[_EdgeKey, _Draft]) -> None:
    """Forwarded packets never seen at the destination belong to connections the destination
    dropped at ingress when the same pair has such drops: they are not evidence of success."""
    for key in [k for k in drafts if k.allowed and k.dst[0] == "pod"]:
        denied = drafts.get(_EdgeKey(key.src, key.dst, key.protocol, key.port, False))
        allowed = drafts[key]
        if denied is None or "ingress" in allowed.directions or "ingress" not in denied.directions:
            continue
        denied.count = max(denied.count, allowed.count)
        denied.absorb(allowed)
        del drafts[key]


def _end(
    raw: RawEndpoint, identities: dict[tuple[str, str], Identity]
) -> tuple[tuple[str, str | None, str], tuple[str, ...]]:
    """The label-level end of a raw endpoint (kind, namespace, selector) and the workloads behind it."""
    if raw.kind == "pod":
        identity = identities[(raw.namespace or "", raw.group)]
        return (raw.kind, raw.namespace, identity.key), identity.workloads
    return (raw.kind, None, address_selector(raw.addr)), ()


def address_selector(addr: str | None) -> str:
    """`/32` or `/128` for an address; empty when the source did not say."""
    if not addr:
        return ""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    return f"{ip}/{ip.max_prefixlen}"


def hours_of(times: pa.Array) -> list[int]:
    """The hours (from the epoch) of times in epoch nanoseconds, each once."""
    hours: list[int] = pc.unique(pc.divide(times, 3_600_000_000_000)).to_pylist()
    return hours


def name_pairs(table: pa.Table | pa.RecordBatch) -> list[tuple[str, str]]:
    """(address, DNS name) of a table's DNS answers (query → ips) and flows' destination names, each once."""
    found: list[tuple[str, str]] = []
    for names_column, address_column in (("dns_answers", "dns_query"), ("dst_names", "dst_ip")):
        lists = table.column(names_column)
        has = pc.greater(pc.fill_null(pc.list_value_length(lists), 0), 0)
        if not pc.any(has).as_py():
            continue
        rows = table.select([names_column, address_column]).filter(has)
        lists = _plain(rows.column(names_column))
        owners = pc.take(rows.column(address_column), pc.list_parent_indices(lists)).cast(pa.string())
        pairs = pa.table({"owner": owners, "value": pc.list_flatten(lists)})
        distinct = pairs.group_by(["owner", "value"], use_threads=False).aggregate([])
        owned = zip(distinct.column("owner").to_pylist(), distinct.column("value").to_pylist(), strict=True)
        for other, value in owned:
            if not other or not value:
                continue
            # an answer's value is an address and `other` the query; a flow's value is a name of its address
            found.append((value, other) if names_column == "dns_answers" else (other, value))
    return found
