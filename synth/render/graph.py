"""The dependency graph of a namespace for the PR: its workloads, their peers, the ports between them.

Built from the generated rules (what the PR allows), so it shows what a reviewer approves. External
peers are grouped: addresses by the DNS names seen for them, the rest as `internet`. The graph is
capped (nodes ranked by flows, the namespace's own workloads first) so it stays readable at 30
workloads, and says what it left out. Node ids are `n0`, `n1`, ...: safe whatever the labels hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.core.model import Peer, PolicySet, Rule
from synth.render.naming import Naming, peer_namespace, ports_text

__all__ = ["Graph", "GraphEdge", "GraphNode", "dependency_graph"]

_GROUP_ORDER = {"workload": 0, "namespace": 1, "external": 2}


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node: `group` is workload (of the namespace), namespace (a pod elsewhere) or external."""

    id: str
    label: str
    group: str


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """An allowed dependency from `source` to `target` (node ids), its ports in `label`."""

    source: str
    target: str
    label: str
    flows: int


@dataclass(frozen=True, slots=True)
class Graph:
    """The graph of one namespace, and the node labels and edge count left out by the caps."""

    namespace: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    omitted_nodes: tuple[str, ...]
    omitted_edges: int
    notes: tuple[str, ...]


_Key = tuple[str, str]  # (group, label)


def dependency_graph(
    namespace: str, policies: PolicySet, naming: Naming, max_nodes: int = 40, max_edges: int = 80
) -> Graph:
    """The workloads of `namespace` and their peers, with at most `max_nodes` nodes and `max_edges` edges."""
    ports_of: dict[tuple[_Key, _Key], set[str]] = {}
    # Flows per link and direction: a link inside the namespace is seen by both ends' policies (egress
    # of one, ingress of the other), so its flows are the larger side's, never the sum.
    flows_by_side: dict[tuple[_Key, _Key], dict[str, int]] = {}
    for policy in policies.in_namespace(namespace):
        if policy.pod_selector.is_empty:
            continue  # default-deny and allow-dns: every pod
        own = ("workload", naming.workload(namespace, policy.pod_selector.canonical()))
        for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
            for rule in rules:
                for peer in rule.peers:
                    other = _peer_key(peer, namespace, rule, naming)
                    pair = (own, other) if direction == "egress" else (other, own)
                    ports_of.setdefault(pair, set()).update(ports_text(rule))
                    sides = flows_by_side.setdefault(pair, {})
                    sides[direction] = sides.get(direction, 0) + (rule.evidence.flows if rule.evidence else 0)
    links = {pair: (ports_of[pair], max(flows_by_side[pair].values())) for pair in ports_of}
    flows_of: dict[_Key, int] = {}
    for (source, target), (_, flows) in links.items():
        for key in (source, target):
            flows_of[key] = flows_of.get(key, 0) + flows
    ranked = sorted(flows_of, key=lambda k: (k[0] != "workload", -flows_of[k], k))
    kept = sorted(ranked[:max_nodes], key=lambda k: (_GROUP_ORDER[k[0]], k[1]))
    ids = {key: f"n{index}" for index, key in enumerate(kept)}
    drawable = sorted((p for p in links if p[0] in ids and p[1] in ids), key=lambda p: (-links[p][1], p))
    chosen = sorted(drawable[:max_edges], key=lambda p: (kept.index(p[0]), kept.index(p[1])))
    return Graph(
        namespace=namespace,
        nodes=tuple(GraphNode(ids[key], key[1], key[0]) for key in kept),
        edges=tuple(GraphEdge(ids[a], ids[b], _port_label(links[(a, b)][0]), links[(a, b)][1]) for a, b in chosen),
        omitted_nodes=tuple(sorted(key[1] for key in ranked[max_nodes:])),
        omitted_edges=len(links) - len(chosen),
        notes=("DNS egress of every pod to the cluster DNS (allow-dns) is not drawn.",),
    )


def _peer_key(peer: Peer, namespace: str, rule: Rule, naming: Naming) -> _Key:
    if peer.ip_block is not None:
        cidr = peer.ip_block.cidr
        kind = naming.peer_kind(peer)
        if kind == "anywhere":
            return ("external", "internet")
        if kind == "world":
            names = (rule.evidence.names if rule.evidence else ()) or naming.dns(cidr)
            return ("external", ", ".join(names) if names else "internet")
        return ("external", kind)
    text = naming.peer(peer, namespace)
    if peer_namespace(peer, namespace) == namespace and peer.pod_selector is not None:
        return ("workload", text.split("/", 1)[1])
    return ("namespace", text)


def _port_label(ports: set[str], limit: int = 3) -> str:
    def order(text: str) -> tuple[str, int]:
        protocol, _, number = text.partition(" ")
        return (protocol, int(number.split("-")[0]) if number[:1].isdigit() else -1)

    ordered = sorted(ports, key=order)
    return ", ".join(ordered[:limit]) + (f" +{len(ordered) - limit}" if len(ordered) > limit else "")
