"""Stored request traffic as distinct raw endpoint pairs: what verify and diff replay.

Flows are reduced exactly as aggregation reduces them (the same pass: replies dropped, allowed
verdicts and policy drops kept, both ends' reports of one connection counted once) into distinct
raw endpoint pairs: (kind, namespace, the pod's full labels, the address of a non-pod end) on each
side, protocol and port. Memory follows the number of distinct pairs, never the number of flows.
Each pair carries the engine's input (`Traffic`, with the pod labels and the namespace labels the
source recorded) and its label-level edge, as in EDGE rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pyarrow as pa

from synth.base.config import NAMESPACE_NAME_LABEL, Settings

# The seam with aggregation: the same reduction, so pairs and counts are the ones the edges (and so
# the generated policies) were made from.
from synth.core.aggregate import FLOW_COLUMNS as AGGREGATE_COLUMNS
from synth.core.aggregate import (
    Accumulator,
    AggregateStats,
    EdgeEnd,
    EdgeSet,
    PairKey,
    RawEndpoint,
    address_selector,
    datetime_of,
    request_counts,
)
from synth.core.aggregate import finish as finish_edges
from synth.core.filters import EndFacts, TrafficFilter
from synth.core.identity import Identity
from synth.policy.evaluate import Endpoint, Traffic
from synth.policy.matchers import DEFINED_PROTOCOLS

__all__ = [
    "NODE_KINDS",
    "OBSERVED_COLUMNS",
    "EndpointRef",
    "Observed",
    "ObservedPair",
    "Unobserved",
    "observe",
    "observe_batches",
    "pair_passes",
    "unobserved_connections",
]

NODE_KINDS = frozenset({"host", "remote-node", "health", "ingress"})
OBSERVED_COLUMNS = (*AGGREGATE_COLUMNS, "src_ns_labels", "dst_ns_labels")
"""The stored columns `observe_batches` reads."""


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """One end at label level, as in EDGE rows: a pod's namespace and selector, or a kind and address."""

    kind: str
    namespace: str | None
    selector: str

    @property
    def order(self) -> tuple[str, str, str]:
        """Sort key (a missing namespace sorts first)."""
        return (self.kind, self.namespace or "", self.selector)

    def text(self) -> str:
        """`namespace/selector` for pods, `kind address` for everything else."""
        if self.kind == "pod":
            return f"{self.namespace}/{self.selector or '{}'}"
        return f"{self.kind} {self.selector}".strip()


@dataclass(frozen=True, slots=True)
class ObservedPair:
    """Distinct raw endpoint pair: the engine's input (`traffic`) and what was seen of it.

    `allowed` is False for attempts the recording shows dropped by policy (including forwards
    that only the source saw, of connections the destination dropped).
    """

    src: EndpointRef
    dst: EndpointRef
    traffic: Traffic
    allowed: bool
    flows: int
    first_seen: datetime
    last_seen: datetime
    src_pods: tuple[str, ...]
    dst_pods: tuple[str, ...]
    src_workload: str = ""  # the owner group (`Deployment/api`) of a pod end; empty for other ends
    dst_workload: str = ""
    requests: tuple[tuple[str, str, int], ...] = ()  # HTTP (method, path, count), when they were read

    @property
    def edge_key(self) -> tuple[EndpointRef, EndpointRef, str, int | None]:
        """The label-level edge this pair belongs to."""
        return (self.src, self.dst, self.traffic.protocol, self.traffic.port)

    def touches(self, namespaces: Iterable[str]) -> bool:
        """Whether a pod end is in one of the namespaces."""
        wanted = set(namespaces)
        return any(end.kind == "pod" and end.namespace in wanted for end in (self.src, self.dst))


@dataclass(frozen=True, slots=True)
class Observed:
    """The stored request traffic: label-level edges and the distinct raw pairs behind them."""

    edges: EdgeSet
    pairs: tuple[ObservedPair, ...]
    stats: AggregateStats


def pair_passes(pair: ObservedPair, wanted: TrafficFilter) -> bool:
    """Whether a pair passes the filters `synth edges` takes too (pods, labels, namespaces, port, verdict)."""
    ends = [
        EndFacts(end.namespace, pods, (dict(end.labels),) if end.labels is not None else ())
        if end.kind == "pod" else EndFacts(None)
        for end, pods in ((pair.traffic.src, pair.src_pods), (pair.traffic.dst, pair.dst_pods))
    ]
    return wanted.accepts(ends[0], ends[1], pair.traffic.protocol, pair.traffic.port, pair.allowed)


_EndKey = tuple[EndpointRef, str]  # a label-level end and, when told apart, its workload


@dataclass(frozen=True, slots=True)
class Unobserved:
    """A connection between two observed workloads that no flow made: `traffic` is what the engine judges.

    `src_workload`/`dst_workload` are the owner groups when workloads were told apart, else empty.
    """

    src: EndpointRef
    dst: EndpointRef
    traffic: Traffic
    src_workload: str = ""
    dst_workload: str = ""


def unobserved_connections(
    pairs: Sequence[ObservedPair], namespaces: Sequence[str] = (), *, by_workload: bool = False
) -> Iterator[Unobserved]:
    """Every (source, destination, protocol/port the destination was reached on) among the observed
    pod ends, touching `namespaces` (or any), that no observed flow used.

    Ends are label-level (`EndpointRef`), or with `by_workload` each workload (owner group) apart,
    so that a selector that also selects another workload shows what it lets through. Each end is
    represented by one of its pods' labels. Ports are those seen at the destination.
    """
    ends, ports, seen = _observed_ends(pairs, by_workload)
    wanted = set(namespaces)

    def order(key: _EndKey) -> tuple[str, str, str, str]:
        return (*key[0].order, key[1])

    destinations = sorted((key for key in ports if key in ends), key=order)
    for src in sorted(ends, key=order):
        for dst in destinations:
            if wanted and not {src[0].namespace, dst[0].namespace} & wanted:
                continue
            for protocol, port in sorted(ports[dst]):
                if (src, dst, protocol, port) not in seen:
                    traffic = Traffic(ends[src], ends[dst], protocol, port)
                    yield Unobserved(src[0], dst[0], traffic, src[1], dst[1])


def _observed_ends(pairs: Sequence[ObservedPair], by_workload: bool) -> tuple[
    dict[_EndKey, Endpoint], dict[_EndKey, set[tuple[str, int]]], set[tuple[_EndKey, _EndKey, str, int | None]]
]:
    """Each pod end with a representative endpoint, the ports each destination was reached on, and
    the (source, destination, protocol, port) connections seen."""
    ends: dict[_EndKey, Endpoint] = {}
    ports: dict[_EndKey, set[tuple[str, int]]] = {}
    seen: set[tuple[_EndKey, _EndKey, str, int | None]] = set()
    for pair in pairs:
        src_key: _EndKey = (pair.src, pair.src_workload if by_workload else "")
        dst_key: _EndKey = (pair.dst, pair.dst_workload if by_workload else "")
        seen.add((src_key, dst_key, pair.traffic.protocol, pair.traffic.port))
        for key, end in ((src_key, pair.traffic.src), (dst_key, pair.traffic.dst)):
            if key[0].kind == "pod" and end.labels is not None and key not in ends:
                ends[key] = replace(end, name=None)
        if pair.dst.kind == "pod" and pair.traffic.protocol in DEFINED_PROTOCOLS and pair.traffic.port is not None:
            ports.setdefault(dst_key, set()).add((pair.traffic.protocol, pair.traffic.port))
    return ends, ports, seen


def observe_batches(
    batches: Iterable[pa.RecordBatch], settings: Settings, *, namespaces: Sequence[str] | None = None
) -> Observed:
    """Observed pairs from any stream of FLOW_SCHEMA batches."""
    accumulator = Accumulator(namespaces)
    for batch in batches:
        names = [name for name in OBSERVED_COLUMNS if name in batch.schema.names]
        accumulator.add(batch.select(names))
    return observe(accumulator, settings)


def observe(accumulator: Accumulator, settings: Settings) -> Observed:
    """Edges and observed pairs from an accumulator that took every flow in (a store engine's or
    `observe_batches`'s)."""
    edges = finish_edges(accumulator, settings)
    namespace_labels = {
        namespace: dict(accumulator.labels[key]) for namespace, (_, key) in accumulator.namespace_labels.items()
    }
    return Observed(edges, tuple(_pairs(accumulator, edges, namespace_labels)), accumulator.stats)


def _pairs(acc: Accumulator, edges: EdgeSet, namespace_labels: Mapping[str, dict[str, str]]) -> Iterator[ObservedPair]:
    by_group = _identity_by_group(edges.identities.values())
    kept = {(_flat(e.src), _flat(e.dst), e.protocol, e.port) for e in edges.edges if e.allowed}
    refs = {key: (_ref(key.src, by_group), _ref(key.dst, by_group)) for key in acc.partials}
    folded = {
        replace(key, allowed=False): partial
        for key, partial in acc.partials.items()
        if key.allowed and (_flat(refs[key][0]), _flat(refs[key][1]), key.protocol, key.port) not in kept
    }
    for key, partial in sorted(acc.partials.items(), key=lambda item: _pair_order(item[0])):
        src_side, dst_side, protocol, port = key.src, key.dst, key.protocol, key.port
        src, dst = refs[key]
        # Forwards that aggregation folded into a destination's drops are attempts of the same
        # connections, not traffic: counted once, as the larger side (as the edges count them).
        real = key.allowed and (_flat(src), _flat(dst), protocol, port) in kept
        flows, first, last = partial.count, partial.first, partial.last
        src_pods, dst_pods = partial.src_pods, partial.dst_pods
        if not key.allowed and key in folded:
            forwards = folded[key]
            flows, first, last = max(flows, forwards.count), min(first, forwards.first), max(last, forwards.last)
            src_pods, dst_pods = src_pods | forwards.src_pods, dst_pods | forwards.dst_pods
        elif key.allowed and not real and replace(key, allowed=False) in acc.partials:
            continue
        loopback = len(src_pods) == 1 and src_pods == dst_pods
        name = next(iter(src_pods)) if loopback else None
        traffic = Traffic(
            _endpoint(src_side, acc.labels, namespace_labels, name, edges.names),
            _endpoint(dst_side, acc.labels, namespace_labels, name, edges.names),
            protocol,
            port,
        )
        yield ObservedPair(
            src,
            dst,
            traffic,
            real,
            flows,
            datetime_of(first),
            datetime_of(last),
            tuple(sorted(src_pods)),
            tuple(sorted(dst_pods)),
            src_side.group if src_side.kind == "pod" else "",
            dst_side.group if dst_side.kind == "pod" else "",
            tuple(sorted((m, p, n) for (m, p), n in request_counts(acc.http[key]).items())) if key in acc.http else (),
        )


def _flat(end: EndpointRef | EdgeEnd) -> tuple[str, str | None, str]:
    return (end.kind, end.namespace, end.selector)


def _pair_order(key: PairKey) -> tuple[Any, ...]:
    """A total order over pair keys (None sorts first)."""
    ends = tuple(
        (value is not None, value if value is not None else "")
        for end in (key.src, key.dst)
        for value in (end.kind, end.namespace, end.group, end.labels_key, end.addr)
    )
    return (*ends, (key.port is not None, key.port or 0), key.protocol, key.allowed)


def _identity_by_group(identities: Iterable[Identity]) -> dict[tuple[str, str], Identity]:
    return {(i.namespace, workload): i for i in identities for workload in i.workloads}


def _ref(side: RawEndpoint, by_group: Mapping[tuple[str, str], Identity]) -> EndpointRef:
    if side.kind == "pod":
        return EndpointRef(side.kind, side.namespace, by_group[(side.namespace or "", side.group)].key)
    return EndpointRef(side.kind, None, address_selector(side.addr))


def _endpoint(
    side: RawEndpoint,
    labels: Mapping[str, tuple[tuple[str, str], ...]],
    namespace_labels: Mapping[str, dict[str, str]],
    name: str | None,
    dns_names: Mapping[str, tuple[str, ...]],
) -> Endpoint:
    namespace = side.namespace
    if side.kind != "pod":
        # the names seen for the address anywhere in the recording: what a DNS-name rule matches by
        names = dns_names.get(side.addr, ()) if side.kind == "world" and side.addr else ()
        return Endpoint(side.kind, ip=side.addr or None, names=names)
    known = labels.get(side.labels_key) or ()
    seen = namespace_labels.get(namespace) if namespace else None
    return Endpoint(
        "pod",
        namespace=namespace,
        # A pod reported without any label is taken as unknown: real pods nearly always carry one.
        labels=dict(known) if known else None,
        namespace_labels={**seen, NAMESPACE_NAME_LABEL: namespace} if seen and namespace else None,
        name=name,
    )
