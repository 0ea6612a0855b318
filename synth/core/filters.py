"""Traffic filters spelled as `hubble observe` spells them: pods, labels, namespaces, ports, verdicts.

`synth edges` and `synth verify` take the same filters. One `TrafficFilter` judges a connection by
what is known of its two ends (`EndFacts`): the edges of the dependency map and the raw pairs that
verify replays both describe themselves this way, so both commands select the same traffic. Filters
of one flag are ORed (`--pod a --pod b`), different flags are ANDed, as in hubble.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from synth.core.aggregate import Edge, EdgeEnd, EdgeSet
from synth.core.identity import Labels

__all__ = ["EndFacts", "LabelRequirement", "TrafficFilter", "filter_edges"]

@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One term of an equality-based label selector: `k=v`, `k!=v`, `k` (exists) or `!k` (absent)."""

    key: str
    value: str | None = None
    negated: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set meets the term (`k!=v` holds when the key is absent, as in Kubernetes)."""
        if self.value is None:
            return (self.key in labels) != self.negated
        return (labels.get(self.key) == self.value) != self.negated


@dataclass(frozen=True, slots=True)
class EndFacts:
    """What a filter may ask of one end: its namespace (pods only), pod names and their label sets."""

    namespace: str | None
    pods: tuple[str, ...] = ()
    labels: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TrafficFilter:
    """The filters of one command line; empty fields filter nothing.

    Pods are `[namespace/]name-prefix`, as `hubble observe --pod` takes them; labels are selectors;
    verdicts are `forwarded` (traffic that went through) and `dropped` (attempts dropped by policy).
    """

    pods: tuple[str, ...] = ()
    from_pods: tuple[str, ...] = ()
    to_pods: tuple[str, ...] = ()
    labels: tuple[tuple[LabelRequirement, ...], ...] = ()
    from_labels: tuple[tuple[LabelRequirement, ...], ...] = ()
    to_labels: tuple[tuple[LabelRequirement, ...], ...] = ()
    from_namespaces: tuple[str, ...] = ()
    to_namespaces: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    protocols: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether it lets everything through."""
        return self == TrafficFilter()

    def accepts(self, src: EndFacts, dst: EndFacts, protocol: str, port: int | None, allowed: bool) -> bool:
        """Whether a connection passes every filter given."""
        either = (src, dst)
        return (
            _any_pod(self.pods, either)
            and _any_pod(self.from_pods, (src,))
            and _any_pod(self.to_pods, (dst,))
            and _any_labels(self.labels, either)
            and _any_labels(self.from_labels, (src,))
            and _any_labels(self.to_labels, (dst,))
            and (not self.from_namespaces or src.namespace in self.from_namespaces)
            and (not self.to_namespaces or dst.namespace in self.to_namespaces)
            and (not self.ports or port in self.ports)
            and (not self.protocols or protocol.upper() in self.protocols)
            and (not self.verdicts or ("forwarded" if allowed else "dropped") in self.verdicts)
        )


def _any_pod(patterns: Sequence[str], ends: Iterable[EndFacts]) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        namespace, _, prefix = pattern.rpartition("/")
        for end in ends:
            if (not namespace or end.namespace == namespace) and any(p.startswith(prefix) for p in end.pods):
                return True
    return False


def _any_labels(selectors: Sequence[tuple[LabelRequirement, ...]], ends: Iterable[EndFacts]) -> bool:
    if not selectors:
        return True
    return any(
        all(term.matches(labels) for term in selector)
        for end in ends
        for labels in end.labels
        for selector in selectors
    )


def _edge_end(end: EdgeEnd, pod_labels: Mapping[tuple[str, str], Labels]) -> EndFacts:
    if end.kind != "pod" or end.namespace is None:
        return EndFacts(None)
    namespace = end.namespace
    labels = tuple(dict(pod_labels[(namespace, pod)]) for pod in end.pods if (namespace, pod) in pod_labels)
    return EndFacts(namespace, end.pods, labels)


def filter_edges(edges: EdgeSet, wanted: TrafficFilter) -> EdgeSet:
    """The edges that pass the filter (the rest of the set unchanged)."""
    if wanted.is_empty:
        return edges

    def keep(edge: Edge) -> bool:
        src, dst = _edge_end(edge.src, edges.pod_labels), _edge_end(edge.dst, edges.pod_labels)
        return wanted.accepts(src, dst, edge.protocol, edge.port, edge.allowed)

    return replace(edges, edges=tuple(edge for edge in edges.edges if keep(edge)))
