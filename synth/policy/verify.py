"""Replay observed request flows through a PolicySet: which traffic would it deny, and why.

Each distinct endpoint pair (`synth.policy.observed`) is evaluated once; results are shown at label level,
as edges are, with counts, first and last seen, and the engine's reasons. Real traffic that is
denied fails verification; attempts that were dropped when recorded are reported apart. HTTP
requests that Cilium HTTP rules refuse (the proxy answers 403) are denied flows of their connection.

What the engine cannot judge is counted and listed, never passed silently: protocols NetworkPolicy
does not define (ICMP), pods whose labels are unknown, named ports no workload resolves
(`synth.policy.ports`: none describes the pod, or those that do disagree), and
traffic whose other end is a node or of unknown identity (whether NetworkPolicy applies to it
depends on the CNI; ingress from the pod's own node is always allowed and is judged as such).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from synth.base.config import NAMESPACE_NAME_LABEL, DnsTarget
from synth.base.text import ascii_text, plural
from synth.core.identity import Labels
from synth.core.model import Peer, PolicySet
from synth.policy.evaluate import Decision, DirectionDecision, Engine, Verdict
from synth.policy.exposure import Allowance, unobserved_allowances
from synth.policy.matchers import DEFINED_PROTOCOLS
from synth.policy.observed import NODE_KINDS, EndpointRef, Observed, ObservedPair
from synth.policy.ports import NamedPortReport

__all__ = [
    "EdgeOutcome",
    "VerifyResult",
    "decisive_reason",
    "generation_gaps",
    "judge",
    "selector_mismatches",
    "unjudged_category",
    "verify",
]

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class EdgeOutcome:
    """One label-level edge and what a policy set makes of it: flows, window, pods, reasons.

    `category` says why an edge is unjudged: protocol, node, unknown-peer, hidden-address, labels, named-port,
    other.
    """

    src: EndpointRef
    dst: EndpointRef
    protocol: str
    port: int | None
    flows: int
    first_seen: datetime
    last_seen: datetime
    src_pods: tuple[str, ...]
    dst_pods: tuple[str, ...]
    reasons: tuple[str, ...]
    category: str = ""

    def port_text(self) -> str:
        """`TCP/80`, or the protocol alone."""
        return self.protocol if self.port is None else f"{self.protocol}/{self.port}"

    def line(self) -> str:
        """`src -> dst TCP/80` (ASCII only: selectors and pods come from flows, which are untrusted)."""
        return ascii_text(f"{self.src.text()} -> {self.dst.text()} {self.port_text()}")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What a policy set does to the observed traffic; `ok` when no observed flow is denied."""

    policies: int
    namespaces: tuple[str, ...]
    flows: int
    allowed_flows: int
    denied: tuple[EdgeOutcome, ...]
    unjudged: tuple[EdgeOutcome, ...]
    attempts: int
    attempts_allowed: tuple[EdgeOutcome, ...]
    attempts_denied: tuple[EdgeOutcome, ...] = ()
    excluded: tuple[tuple[str, int], ...] = ()
    unobserved: tuple[Allowance, ...] = ()
    named_ports: NamedPortReport = field(default_factory=NamedPortReport)

    @property
    def over_permissive(self) -> tuple[Allowance, ...]:
        """Allowed connections no flow used that nothing explains (the second half of least privilege)."""
        return tuple(a for a in self.unobserved if not a.flag)

    def flagged(self) -> tuple[tuple[str, int], ...]:
        """(flag, allowances) for the allowances that are meant: dns, public, inseparable, pattern."""
        counts: dict[str, int] = {}
        for allowance in self.unobserved:
            if allowance.flag:
                counts[allowance.flag] = counts.get(allowance.flag, 0) + 1
        return tuple(sorted(counts.items()))

    @property
    def ok(self) -> bool:
        """True when no observed flow is denied."""
        return not self.denied

    @property
    def denied_flows(self) -> int:
        """Flows of the denied edges."""
        return sum(e.flows for e in self.denied)

    @property
    def unjudged_flows(self) -> int:
        """Flows the engine could not judge."""
        return sum(e.flows for e in self.unjudged)

    def unjudged_by_category(self) -> tuple[tuple[str, int], ...]:
        """(category, flows), sorted by category."""
        totals: dict[str, int] = {}
        for edge in self.unjudged:
            totals[edge.category] = totals.get(edge.category, 0) + edge.flows
        return tuple(sorted(totals.items()))

    def summary(self) -> str:
        """`verify: 0 observed flows denied, 12 unjudged (node, protocol); 0 connections allowed that no flow used`."""
        categories = ", ".join(c for c, _ in self.unjudged_by_category())
        unjudged = f"{self.unjudged_flows:,} unjudged" + (f" ({categories})" if categories else "")
        flagged = ", ".join(f"{n:,} {flag}" for flag, n in self.flagged())
        unused = f"{plural(len(self.over_permissive), 'connection')} allowed that no flow used" + (
            f" (besides {flagged}, flagged)" if flagged else ""
        )
        return f"verify: {self.denied_flows:,} observed flows denied, {unjudged}; {unused}"


@dataclass(slots=True)
class _Group:
    pairs: list[tuple[ObservedPair, str]] = field(default_factory=list)


def verify(
    observed: Observed,
    policies: PolicySet,
    namespaces: Sequence[str] | None = None,
    dns: DnsTarget | None = None,
    named_ports: NamedPortReport | None = None,
    patterns: Collection[str] = (),
) -> VerifyResult:
    """Both halves of least privilege over the observed pairs (touching `namespaces`, or all): which
    observed flows the policies deny, and which connections among the recording's workloads and
    addresses they allow that no flow used (`dns` says where cluster DNS lives, and `patterns` are
    the DNS-name patterns the user asked for, for the flags).
    `named_ports` is what `attach_named_ports` resolved on these pairs, carried into the result."""
    engine = Engine(policies)
    chosen = tuple(sorted(set(namespaces))) if namespaces else ()
    denied: dict[Any, _Group] = {}
    unjudged: dict[Any, _Group] = {}
    attempts_allowed: dict[Any, _Group] = {}
    attempts_denied: dict[Any, _Group] = {}
    flows = allowed_flows = attempts = 0
    for pair in observed.pairs:
        if chosen and not pair.touches(chosen):
            continue
        decision = engine.evaluate(pair.traffic)
        outcome, reason = judge(pair, decision)
        if not pair.allowed:
            attempts += pair.flows
            bucket = {Verdict.ALLOWED: attempts_allowed, Verdict.DENIED: attempts_denied}.get(outcome)
            if bucket is not None:
                bucket.setdefault((pair.edge_key, ""), _Group()).pairs.append((pair, reason))
            continue
        flows += pair.flows
        refused, by = engine.http_denied(decision, pair.requests) if outcome == Verdict.ALLOWED else ((), ())
        if refused:  # allowed at L4, some requests refused at L7: those count as denied flows
            count = min(pair.flows, sum(n for _, _, n in refused))
            shown = ", ".join(f"{method} {path}" for method, path, _ in refused[:5])
            more = f" (+{len(refused) - 5} more)" if len(refused) > 5 else ""
            reason = (f"denied at L7: the proxy answers HTTP 403 to {shown}{more}: no HTTP entry of "
                      f"{', '.join(by)} matches")
            denied.setdefault((pair.edge_key, ""), _Group()).pairs.append((replace(pair, flows=count), reason))
            allowed_flows += pair.flows - count
        elif outcome == Verdict.ALLOWED:
            allowed_flows += pair.flows
        elif outcome == Verdict.DENIED:
            denied.setdefault((pair.edge_key, ""), _Group()).pairs.append((pair, reason))
        else:
            category = unjudged_category(pair, decision)
            unjudged.setdefault((pair.edge_key, category), _Group()).pairs.append((pair, reason))
    stats = observed.stats
    return VerifyResult(
        policies=len(policies.in_effect()),
        namespaces=chosen,
        flows=flows,
        allowed_flows=allowed_flows,
        denied=_outcomes(denied),
        unjudged=_outcomes(unjudged),
        attempts=attempts,
        attempts_allowed=_outcomes(attempts_allowed),
        attempts_denied=_outcomes(attempts_denied),
        excluded=(("replies", stats.replies), ("datapath drops", stats.datapath_drops), ("other", stats.unjudged)),
        unobserved=unobserved_allowances(observed.pairs, policies, engine, chosen, dns or DnsTarget(), patterns),
        named_ports=named_ports or NamedPortReport(),
    )


def judge(pair: ObservedPair, decision: Decision) -> tuple[Verdict, str]:
    """The outcome verify reports: the engine's, except that a denial of traffic with a node or
    an end of unknown identity is unjudged (NetworkPolicy's reach there depends on the CNI)."""
    reason = decisive_reason(decision)
    if decision.verdict == Verdict.DENIED and {pair.src.kind, pair.dst.kind} & (NODE_KINDS | {"unknown"}):
        return Verdict.UNKNOWN, f"{reason} (not judged: whether policy applies to this end depends on the CNI)"
    if decision.verdict == Verdict.DENIED and _hidden_address(pair):
        return Verdict.UNKNOWN, (
            f"{reason} (not judged: the flow records hold no address for the source, e.g. Calico's pvt "
            "aggregation; it may be the pod's own node, which is always allowed)"
        )
    return decision.verdict, reason


def _hidden_address(pair: ObservedPair) -> bool:
    """A source without an address (aggregated away) may be the destination pod's node; a destination
    without one is still a connection the policies block, so only the source side counts."""
    return pair.traffic.src.kind == "world" and not pair.traffic.src.ip


def decisive_reason(decision: Decision) -> str:
    """The reasons of the directions that decided: the denying ones, else the unknown ones, else both."""
    directions: tuple[tuple[str, DirectionDecision], ...] = (("egress", decision.egress), ("ingress", decision.ingress))
    for wanted in (Verdict.DENIED, Verdict.UNKNOWN):
        picked = [f"{name} {d.reason}" for name, d in directions if d.verdict == wanted]
        if picked:
            return "; ".join(picked)
    return "; ".join(f"{name} {d.reason}" for name, d in directions)


def unjudged_category(pair: ObservedPair, decision: Decision) -> str:
    """Why the engine could not judge: protocol, node, unknown-peer, labels, named-port, other."""
    if pair.traffic.protocol not in DEFINED_PROTOCOLS or pair.traffic.port is None:
        return "protocol"
    kinds = {pair.src.kind, pair.dst.kind}
    if kinds & NODE_KINDS:
        return "node"
    if "unknown" in kinds:
        return "unknown-peer"
    if _hidden_address(pair):
        return "hidden-address"
    if any(end.is_pod and end.labels is None for end in (pair.traffic.src, pair.traffic.dst)):
        return "labels"
    return "named-port" if "named port" in decision.reason else "other"


def _outcomes(groups: Mapping[Any, _Group]) -> tuple[EdgeOutcome, ...]:
    result = []
    for (edge_key, category), group in groups.items():
        src, dst, protocol, port = edge_key
        pairs = [p for p, _ in group.pairs]
        result.append(
            EdgeOutcome(
                src=src,
                dst=dst,
                protocol=protocol,
                port=port,
                flows=sum(p.flows for p in pairs),
                first_seen=min(p.first_seen for p in pairs),
                last_seen=max(p.last_seen for p in pairs),
                src_pods=tuple(sorted({pod for p in pairs for pod in p.src_pods})),
                dst_pods=tuple(sorted({pod for p in pairs for pod in p.dst_pods})),
                reasons=tuple(sorted({reason for _, reason in group.pairs})),
                category=category,
            )
        )
    return tuple(sorted(result, key=_outcome_order))


def _outcome_order(edge: EdgeOutcome) -> tuple[Any, ...]:
    return (edge.category, edge.src.order, edge.dst.order, edge.protocol, -1 if edge.port is None else edge.port)


# --- the self-check of generated policies ------------------------------------------------------------


def generation_gaps(result: VerifyResult, include_attempts: bool = False) -> tuple[EdgeOutcome, ...]:
    """Denied observed edges that generation should have allowed: every denied edge except those
    it reports as findings instead of rules (an end no selector can name, a non-pod end without
    an address). With `include_attempts` (--allow-dropped), denied attempts count too."""
    candidates = (*result.denied, *(result.attempts_denied if include_attempts else ()))
    return tuple(edge for edge in candidates if not _reported_instead(edge))


def _reported_instead(edge: EdgeOutcome) -> bool:
    for end in (edge.src, edge.dst):
        if end.kind == "pod" and end.selector.startswith("?"):
            return True
        if end.kind != "pod" and not end.selector:
            return True
    return False


def selector_mismatches(policies: PolicySet, pod_labels: Mapping[tuple[str, str], Labels]) -> tuple[str, ...]:
    """Rules whose policy podSelector (or pod peer) does not select a pod whose flows made the rule."""
    problems: list[str] = []
    for policy in policies.policies:
        for rule in (*policy.ingress, *policy.egress):
            if rule.evidence is None:
                continue
            for pod in rule.evidence.pods:
                labels = pod_labels.get((policy.namespace, pod))
                if labels is not None and not policy.pod_selector.matches(dict(labels)):
                    problems.append(
                        f"{policy.namespace}/{policy.name}: podSelector {{{policy.pod_selector.canonical()}}} "
                        f"does not select pod {policy.namespace}/{pod}, whose flows made it"
                    )
            for peer in rule.peers:
                namespace = _peer_namespace(peer, policy.namespace)
                if peer.pod_selector is None or namespace is None:
                    continue
                for pod in rule.evidence.peer_pods:
                    labels = pod_labels.get((namespace, pod))
                    if labels is not None and not peer.pod_selector.matches(dict(labels)):
                        problems.append(
                            f"{policy.namespace}/{policy.name}: peer podSelector {{{peer.pod_selector.canonical()}}} "
                            f"does not select pod {namespace}/{pod}, whose flows made the rule"
                        )
    return tuple(sorted(set(problems)))


def _peer_namespace(peer: Peer, own: str) -> str | None:
    if peer.namespace_selector is None:
        return own
    labels = dict(peer.namespace_selector.match_labels)
    only_name = len(labels) == 1 and not peer.namespace_selector.match_expressions
    return labels.get(NAMESPACE_NAME_LABEL) if only_name else None
