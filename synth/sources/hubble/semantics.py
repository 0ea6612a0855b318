"""Hubble semantics shared by the file importer and the live gRPC collector.

Turns Cilium identity labels into pod labels, namespace labels and an endpoint kind, and maps
Hubble's enums (by name or number, as protojson may print either) onto FLOW_SCHEMA values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from synth.sources.columns import Labels, sorted_labels, split_label

VERDICT_BY_NAME = {
    "FORWARDED": "forwarded",
    "DROPPED": "dropped",
    "ERROR": "error",
    "AUDIT": "audit",
    "REDIRECTED": "redirected",
    "VERDICT_UNKNOWN": "unknown",
    # TRACED and TRANSLATED are observation points, not decisions: they prove nothing either way.
    "TRACED": "unknown",
    "TRANSLATED": "unknown",
}
VERDICT_BY_NUMBER = {
    0: "unknown",
    1: "forwarded",
    2: "dropped",
    3: "error",
    4: "audit",
    5: "redirected",
    6: "unknown",
    7: "unknown",
}
DIRECTION_BY_NAME = {"INGRESS": "ingress", "EGRESS": "egress", "TRAFFIC_DIRECTION_UNKNOWN": "unknown"}
DIRECTION_BY_NUMBER = {0: "unknown", 1: "ingress", 2: "egress"}
# The drop reasons that are policy decisions, by number, for producers that print numbers.
POLICY_DROP_BY_NUMBER = {133: "POLICY_DENIED", 181: "POLICY_DENY", 189: "AUTH_REQUIRED"}
L4_PROTOCOLS = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP", "ICMPv4": "ICMPv4", "ICMPv6": "ICMPv6"}

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


def workload_name(workloads: list[dict[str, str]] | None) -> str | None:
    """`Kind/name` of the first owner Hubble reports, or None."""
    if not workloads:
        return None
    first = workloads[0]
    name = first.get("name") or ""
    kind = first.get("kind") or ""
    if not name:
        return None
    return f"{kind}/{name}" if kind else name
