"""Deployed policies vs proposed ones: per object as normalised YAML, and as connectivity.

The text diff compares `normalised_yaml` forms (fixed key order, defaults explicit, evidence
left out), so only real change shows. The connectivity diff replays every observed endpoint pair
(as `synth verify` does) through both sets: newly allowed, newly blocked, unchanged. The attack
surface is what the deployed set allows that was never observed: every observed workload (a
representative pod's labels) to every observed destination workload and port it never used,
allowed by the deployed set and denied by the proposed one.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from synth.base.config import DnsTarget
from synth.base.text import ascii_text
from synth.core.model import LabelSelector, NetworkPolicy, PolicySet, PolicyType, tiered_name
from synth.core.synthesize import DEFAULT_DENY
from synth.policy.evaluate import Engine, Verdict
from synth.policy.manifest import normalised_yaml
from synth.policy.observed import EndpointRef, Observed, ObservedPair, unobserved_connections
from synth.policy.ports import NamedPortReport
from synth.policy.verify import VerifyResult, decisive_reason, judge, verify

__all__ = [
    "Change",
    "DiffResult",
    "ObjectDiff",
    "adopt_deployed_names",
    "diff",
]

Status = Literal["added", "removed", "changed", "unchanged"]
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_SEVERITY = {Verdict.ALLOWED: 0, Verdict.UNKNOWN: 1, Verdict.DENIED: 2}
CHANGES = ("newly-blocked", "newly-allowed", "changed-unjudged", "unchanged")


@dataclass(frozen=True, slots=True)
class ObjectDiff:
    """One policy name in one namespace: how it differs, and the unified diff ("" when unchanged)."""

    namespace: str
    name: str
    status: Status
    text: str
    resource: str = ""  # as kubectl names it in full: networkpolicies.networking.k8s.io, ...


@dataclass(frozen=True, slots=True)
class Change:
    """One label-level connection under both sets. `flows` is 0 for never observed connections.

    `change`: newly-blocked, newly-allowed, changed-unjudged (one side cannot judge it), unchanged; and
    `surface` for a never observed connection the deployed set allows and the proposed one denies.
    """

    src: EndpointRef
    dst: EndpointRef
    protocol: str
    port: int | None
    flows: int
    first_seen: datetime | None
    last_seen: datetime | None
    deployed: Verdict
    proposed: Verdict
    deployed_reason: str
    proposed_reason: str
    change: str

    def line(self) -> str:
        """`src -> dst TCP/80` in printable ASCII."""
        port = self.protocol if self.port is None else f"{self.protocol}/{self.port}"
        return ascii_text(f"{self.src.text()} -> {self.dst.text()} {port}", keep_newlines=True)


@dataclass(frozen=True, slots=True)
class DiffResult:
    """Text and connectivity differences between a deployed and a proposed set."""

    namespaces: tuple[str, ...]
    objects: tuple[ObjectDiff, ...]
    connectivity: tuple[Change, ...]
    surface: tuple[Change, ...]
    renamed: tuple[tuple[str, str, str], ...] = ()
    deployed_check: VerifyResult | None = None  # both halves of least privilege for the deployed set
    named_ports: NamedPortReport = field(default_factory=NamedPortReport)

    @property
    def differs(self) -> bool:
        """True unless both sets are the same after normalisation."""
        return any(o.status != "unchanged" for o in self.objects)

    def object_counts(self) -> dict[str, int]:
        """Objects per status."""
        return {s: sum(o.status == s for o in self.objects) for s in ("changed", "added", "removed", "unchanged")}

    def change_counts(self) -> dict[str, int]:
        """Observed connections per change."""
        return {c: sum(e.change == c for e in self.connectivity) for c in CHANGES}


# --- building ------------------------------------------------------------------------------------------


def adopt_deployed_names(
    proposed: PolicySet, deployed: PolicySet
) -> tuple[PolicySet, tuple[tuple[str, str, str], ...]]:
    """Give a proposed policy the name of the deployed one that selects the same pods in the same
    directions (same namespace, podSelector and policyTypes), so regeneration causes no rename churn.

    Returns the renamed set and (namespace, proposed name, deployed name) for every rename.
    `default-deny` keeps its name: the output's apply order and roll-back steps name it. A Calico
    policy outside the default tier takes only a name that starts with `<tier>.` (`tiered_name`).
    """
    shapes: dict[tuple[str, LabelSelector, tuple[PolicyType, ...]], list[str]] = {}
    for policy in deployed.policies:
        shapes.setdefault(_shape(policy), []).append(policy.name)
    taken = {p.key for p in proposed.policies}
    renamed: list[tuple[str, str, str]] = []
    result: list[NetworkPolicy] = []
    for policy in proposed.policies:
        candidates = sorted(name for name in shapes.get(_shape(policy), ()) if _fits_tier(name, policy))
        if candidates and policy.name not in candidates and policy.name != tiered_name(DEFAULT_DENY, policy.tier):
            free = [name for name in candidates if (policy.namespace, name) not in taken]
            if free:
                taken.discard(policy.key)
                taken.add((policy.namespace, free[0]))
                renamed.append((policy.namespace, policy.name, free[0]))
                policy = replace(policy, name=free[0])
        result.append(policy)
    return PolicySet.of(result), tuple(renamed)


def _fits_tier(name: str, policy: NetworkPolicy) -> bool:
    """Whether `name` may name `policy` in its tier: Calico 3.29 to 3.31 refuse a name outside the
    default tier that does not start with `<tier>.`."""
    prefix = tiered_name("", policy.tier)  # `<tier>.` outside the default tier, else empty
    return name.startswith(prefix)


def _shape(policy: NetworkPolicy) -> tuple[str, LabelSelector, tuple[PolicyType, ...]]:
    return (policy.namespace, policy.pod_selector, policy.policy_types)


def diff(
    observed: Observed,
    deployed: PolicySet,
    proposed: PolicySet,
    namespaces: Sequence[str],
    renamed: tuple[tuple[str, str, str], ...] = (),
    dns: DnsTarget | None = None,
    named_ports: NamedPortReport | None = None,
    patterns: Collection[str] = (),
) -> DiffResult:
    """Compare the policies of `namespaces` as text and by what they do to the observed traffic, and
    measure the deployed set by both halves of least privilege (`dns` and the DNS-name `patterns` the
    user asked for, for the flags of the second).

    `named_ports` is what `attach_named_ports` resolved on the observed pairs, carried into the result.
    """
    chosen = tuple(sorted(set(namespaces)))
    deployed_here = PolicySet.of([p for p in deployed.policies if p.namespace in chosen])
    deployed_engine, proposed_engine = Engine(deployed_here), Engine(proposed)
    pairs = [p for p in observed.pairs if p.touches(chosen)]
    return DiffResult(
        namespaces=chosen,
        objects=text_diff(deployed_here, proposed, chosen),
        connectivity=_connectivity(pairs, deployed_engine, proposed_engine),
        surface=_surface(observed.pairs, chosen, deployed_engine, proposed_engine),
        renamed=renamed,
        deployed_check=verify(observed, deployed_here, chosen, dns, named_ports, patterns),
        named_ports=named_ports or NamedPortReport(),
    )


def text_diff(deployed: PolicySet, proposed: PolicySet, namespaces: Iterable[str]) -> tuple[ObjectDiff, ...]:
    """Per object of the namespaces, sorted by namespace, name and kind. An object is compared with the one of
    its kind and name on the other side: objects of different kinds are different objects, so a NetworkPolicy
    rewritten as a CiliumNetworkPolicy is one removed and one added (applying the new one leaves the old one
    in force until it is deleted)."""
    result = []
    for namespace in sorted(set(namespaces)):
        before, after = _by_name(deployed.in_namespace(namespace)), _by_name(proposed.in_namespace(namespace))
        for name in sorted(before.keys() | after.keys()):
            for resource, old, new in _pairs(before.get(name, []), after.get(name, [])):
                status: Status = (
                    "added" if old is None else "removed" if new is None else "unchanged" if old == new else "changed"
                )
                text = "" if status == "unchanged" else _unified(namespace, name, old, new)
                result.append(ObjectDiff(namespace, name, status, text, resource))
    return tuple(result)


def _by_name(policies: Iterable[NetworkPolicy]) -> dict[str, list[NetworkPolicy]]:
    named: dict[str, list[NetworkPolicy]] = {}
    for policy in policies:
        named.setdefault(policy.name, []).append(policy)
    return named


def _pairs(
    olds: list[NetworkPolicy], news: list[NetworkPolicy]
) -> Iterable[tuple[str, str | None, str | None]]:
    """(resource, deployed, proposed) normalised YAML of the objects of one name and kind, None where a side
    has none."""
    for resource in sorted({p.resource for p in (*olds, *news)}):
        old = next((normalised_yaml(p) for p in olds if p.resource == resource), None)
        new = next((normalised_yaml(p) for p in news if p.resource == resource), None)
        yield resource, old, new


def _unified(namespace: str, name: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"deployed/{namespace}/{name}",
        tofile="/dev/null" if new is None else f"proposed/{namespace}/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _worst(verdicts: Iterable[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    return max(verdicts, key=lambda item: (_SEVERITY[item[0]], item[1]))


def _classify(deployed: Verdict, proposed: Verdict) -> str:
    if deployed == proposed:
        return "unchanged"
    if Verdict.UNKNOWN in (deployed, proposed):
        return "changed-unjudged"
    return "newly-allowed" if proposed == Verdict.ALLOWED else "newly-blocked"


def _connectivity(pairs: Sequence[ObservedPair], deployed: Engine, proposed: Engine) -> tuple[Change, ...]:
    groups: dict[Any, list[tuple[ObservedPair, tuple[Verdict, str], tuple[Verdict, str]]]] = {}
    for pair in pairs:
        before = judge(pair, deployed.evaluate(pair.traffic))
        after = judge(pair, proposed.evaluate(pair.traffic))
        groups.setdefault(pair.edge_key, []).append((pair, before, after))
    result = []
    for (src, dst, protocol, port), members in groups.items():
        before = _worst(b for _, b, _ in members)
        after = _worst(a for _, _, a in members)
        result.append(
            Change(
                src,
                dst,
                protocol,
                port,
                sum(p.flows for p, _, _ in members),
                min(p.first_seen for p, _, _ in members),
                max(p.last_seen for p, _, _ in members),
                before[0],
                after[0],
                before[1],
                after[1],
                _classify(before[0], after[0]),
            )
        )
    return tuple(sorted(result, key=_change_order))


def _surface(
    pairs: Sequence[ObservedPair], namespaces: tuple[str, ...], deployed: Engine, proposed: Engine
) -> tuple[Change, ...]:
    """Connections between observed workloads that no flow used, allowed by deployed and denied by proposed."""
    result = []
    for candidate in unobserved_connections(pairs, namespaces):
        before, after = deployed.evaluate(candidate.traffic), proposed.evaluate(candidate.traffic)
        if before.verdict == Verdict.ALLOWED and after.verdict == Verdict.DENIED:
            reasons = (decisive_reason(before), decisive_reason(after))
            verdicts = (before.verdict, after.verdict)
            src, dst, traffic = candidate.src, candidate.dst, candidate.traffic
            result.append(
                Change(src, dst, traffic.protocol, traffic.port, 0, None, None, *verdicts, *reasons, "surface")
            )
    return tuple(result)


def _change_order(change: Change) -> tuple[Any, ...]:
    rank = CHANGES.index(change.change) if change.change in CHANGES else len(CHANGES)
    return (rank, change.src.order, change.dst.order, change.protocol, -1 if change.port is None else change.port)
