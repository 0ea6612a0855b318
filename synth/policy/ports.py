"""Named container ports for the pods of the observed traffic, from workload manifests or the cluster's pods.

A named-port rule (`ports: [{port: http}]`) matches a connection only when the destination pod
declares a container port of that name, number and protocol. Flows carry pod labels, not container
ports, so each observed pod end takes its ports from the workloads that describe it:

- a workload manifest (Deployment, ..., CronJob) describes an end in its namespace that carries
  all of its pod template's labels (controllers add their own, such as `pod-template-hash`);
- a Pod read from the cluster describes an end whose recorded labels it all carries (equal labels
  are the usual case; Cilium leaves some labels, `pod-template-hash` among them, out of what flows
  record); a Pod manifest either way, since admission may add labels too;
- a workload without labels describes nothing: its pods cannot be told by their labels.

A name is resolved when every workload that describes the end declares it with the same number and
protocol. When they disagree (another number or protocol, or not declared at all), the pod is one of
them but which is unknown: the name stays unresolved and says why, so a rule naming it leaves the
traffic unjudged rather than judged on a guess. An end no workload describes keeps unknown ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from synth.core.model import ContainerPort, PolicySet, Workload, WorkloadSource
from synth.policy.matchers import Endpoint, LabelsKey, Traffic, labels_key
from synth.policy.observed import Observed

__all__ = ["NamedPortReport", "attach_named_ports", "policy_port_names"]

_SHOWN = 4  # disagreeing declarations named in a reason


@dataclass(frozen=True, slots=True)
class NamedPortReport:
    """What resolving named ports did, counted per observed destination pod and port name that a rule
    may ask of it (the ingress rules of the policies that select it, and every egress rule).

    `resolved`: (source, count) where the name maps to one number and protocol; `undeclared`: the
    pod's ports are known and none has the name (a rule naming it does not match); `conflicting`:
    the workloads that describe the pod disagree (left unjudged); `unknown`: no workload describes
    the pod.
    """

    resolved: tuple[tuple[WorkloadSource, int], ...] = ()
    undeclared: int = 0
    conflicting: int = 0
    unknown: int = 0

    @property
    def resolved_total(self) -> int:
        """Names resolved to a number, from any source."""
        return sum(n for _, n in self.resolved)


@dataclass(frozen=True, slots=True)
class _Group:
    """Workloads alike for named ports (a Deployment's many pods), and how to name them."""

    kind: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[ContainerPort, ...]
    source: WorkloadSource
    names: tuple[str, ...]

    def describes(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod end with these recorded labels may be one of these pods (see the module)."""
        own = dict(self.labels)
        carries_template = all(labels.get(key) == value for key, value in own.items())
        if self.kind != "Pod":
            return carries_template
        carried_by_pod = all(own.get(key) == value for key, value in labels.items())
        return carried_by_pod if self.source == "cluster" else carries_template or carried_by_pod

    def text(self) -> str:
        """`Deployment x/web`, `Pod x/web-1 and 2 more pods`."""
        more = f" and {len(self.names) - 1} more {self.kind.lower()}s" if len(self.names) > 1 else ""
        return f"{self.kind} {self.namespace}/{self.names[0]}{more}"


@dataclass(frozen=True, slots=True)
class _Resolution:
    named: dict[str, tuple[int, str]] | None
    unresolved: dict[str, str] | None
    source: WorkloadSource | None


_UNKNOWN = _Resolution(None, None, None)


def policy_port_names(policies: PolicySet) -> frozenset[str]:
    """The port names the policies' rules use."""
    return frozenset(
        spec.port
        for policy in policies.policies
        for rule in (*policy.ingress, *policy.egress)
        for spec in rule.ports
        if isinstance(spec.port, str)
    )


def attach_named_ports(
    observed: Observed, workloads: Sequence[Workload], policies: PolicySet
) -> tuple[Observed, NamedPortReport]:
    """Every pod end of the observed pairs with the named ports the workloads give it (nothing changes
    when the policies name no port), and the count of what was resolved."""
    names = policy_port_names(policies)
    if not names:
        return observed, NamedPortReport()
    groups = _groups(workloads)
    found: dict[tuple[str, LabelsKey], _Resolution] = {}

    def resolved(end: Endpoint) -> Endpoint:
        if not end.is_pod or end.namespace is None or end.labels is None:
            return end
        key = (end.namespace, labels_key(end.labels) or ())
        resolution = found.get(key)
        if resolution is None:
            matching = [g for g in groups.get(end.namespace, ()) if g.describes(end.labels)]
            resolution = found[key] = _resolve(matching) if matching else _UNKNOWN
        return replace(end, named_ports=resolution.named, unresolved_ports=resolution.unresolved)

    pairs = tuple(
        replace(
            pair,
            traffic=Traffic(
                resolved(pair.traffic.src), resolved(pair.traffic.dst), pair.traffic.protocol, pair.traffic.port
            ),
        )
        for pair in observed.pairs
    )
    destinations = {(p.traffic.dst.namespace, labels_key(p.traffic.dst.labels) or ()) for p in pairs}
    counted = [(found[key], _names_for(key, policies)) for key in destinations if key in found]
    return replace(observed, pairs=pairs), _report(counted)


def _names_for(end: tuple[str, LabelsKey], policies: PolicySet) -> frozenset[str]:
    """The port names rules may ask of this destination: the ingress rules of the policies that
    select it, and every egress rule (whose peers may be it)."""
    namespace, labels = end
    return frozenset(
        spec.port
        for policy in policies.policies
        for rule in (
            *policy.egress,
            *(policy.ingress if policy.namespace == namespace and policy.pod_selector.matches(dict(labels)) else ()),
        )
        for spec in rule.ports
        if isinstance(spec.port, str)
    )


def _groups(workloads: Iterable[Workload]) -> dict[str, list[_Group]]:
    """Workloads with labels by namespace, alike ones (one ReplicaSet's pods) as one group, sorted."""
    alike: dict[tuple[WorkloadSource, str, str, tuple[tuple[str, str], ...], tuple[ContainerPort, ...]], list[str]] = {}
    for w in workloads:
        if w.labels:
            alike.setdefault((w.source, w.kind, w.namespace, w.labels, w.ports), []).append(w.name)
    result: dict[str, list[_Group]] = {}
    for (source, kind, namespace, labels, ports), names in sorted(alike.items(), key=_group_order):
        result.setdefault(namespace, []).append(_Group(kind, namespace, labels, ports, source, tuple(sorted(names))))
    return result


def _group_order(item: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], tuple[ContainerPort, ...]], list[str]]
                 ) -> tuple[object, ...]:  # fmt: skip
    (source, kind, namespace, labels, ports), names = item
    return (source, kind, namespace, labels, tuple((p.name, p.port, p.protocol) for p in ports), min(names))


def _resolve(groups: Sequence[_Group]) -> _Resolution:
    """One pod end's ports: the names all describing workloads agree on; the others with why not."""
    named: dict[str, tuple[int, str]] = {}
    unresolved: dict[str, str] = {}
    for name in sorted({p.name for g in groups for p in g.ports}):
        by_value: dict[tuple[int, str] | None, list[_Group]] = {}
        for group in groups:
            declared: set[tuple[int, str] | None] = {(p.port, p.protocol) for p in group.ports if p.name == name}
            for value in declared or {None}:
                by_value.setdefault(value, []).append(group)
        only = next(iter(by_value))
        if len(by_value) == 1 and only is not None:
            named[name] = only
        else:
            unresolved[name] = _disagreement(by_value)
    return _Resolution(named, unresolved or None, groups[0].source)


def _disagreement(by_value: Mapping[tuple[int, str] | None, Sequence[_Group]]) -> str:
    """`the workloads that match the pod disagree: TCP/8080 in Deployment x/web; none in ...`."""
    parts = []
    for value in sorted(by_value, key=lambda v: (v is None, v or (0, ""))):
        what = "no such port" if value is None else f"{value[1]}/{value[0]}"
        parts.append(f"{what} in {', '.join(g.text() for g in by_value[value])}")
    more = f"; and {len(parts) - _SHOWN} more" if len(parts) > _SHOWN else ""
    return f"the workloads that match the pod disagree: {'; '.join(parts[:_SHOWN])}{more}"


def _report(resolutions: Iterable[tuple[_Resolution, frozenset[str]]]) -> NamedPortReport:
    resolved: dict[WorkloadSource, int] = {}
    undeclared = conflicting = unknown = 0
    for resolution, names in resolutions:
        for name in names:
            if resolution.named is None:
                unknown += 1
            elif name in (resolution.unresolved or {}):
                conflicting += 1
            elif name in resolution.named and resolution.source is not None:
                resolved[resolution.source] = resolved.get(resolution.source, 0) + 1
            else:
                undeclared += 1
    return NamedPortReport(tuple(sorted(resolved.items())), undeclared, conflicting, unknown)
