"""Evaluate connections against a PolicySet with upstream NetworkPolicy semantics, and say why.

`Engine` compiles the policies once (see `synth.policy.matchers`) and answers `evaluate(traffic)` with a
`Decision`: egress is decided at the source if it is a pod, ingress at the destination if it is a
pod; both must allow. Each direction says which policies isolate the pod and which rules allow the
connection (`x/allow-a ingress[0]`). The verdict is `unknown` when the known facts do not decide
it: a pod's labels or IP, a destination's container ports for a named port, or a protocol that
NetworkPolicy does not define (ICMP) at an isolated pod.

Model choices (reference §3.3, §5): ipBlocks match any end's IP, pods included (policy-assistant
and the upstream e2e tests); ingress from the pod's own node (`kind == "host"`) is always allowed;
a pod talking to itself (same namespace/name or same IP) is allowed. Calico StagedNetworkPolicies
count as the policies they stage, in place of the Calico NetworkPolicy of the same name
(`PolicySet.in_effect`): the verdict is the one Calico shows as pending, what applying them would do.

Cilium HTTP rules (`Rule.http`) act after L4 (`http_denied`): in a direction where every rule that
allows the connection has HTTP entries, a request that matches none of them is refused by the
proxy (HTTP 403); a rule without entries on the same connection lets every request through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from synth.core.l7 import matches
from synth.core.model import HTTPRule, PolicySet
from synth.policy.matchers import (
    DEFINED_PROTOCOLS,
    CompiledRule,
    Endpoint,
    Match,
    SelectorCache,
    Target,
    Traffic,
    Unknown,
    compile_rules,
    labels_key,
    selector_target_text,
)

__all__ = ["Decision", "DirectionDecision", "Endpoint", "Engine", "Traffic", "Verdict", "explain"]

Direction = Literal["ingress", "egress"]
_CACHE_LIMIT = 200_000


class Verdict(StrEnum):
    """The outcome for one direction or a whole connection."""

    ALLOWED = "allowed"
    DENIED = "denied"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DirectionDecision:
    """The decision for one direction.

    `isolated_by`: keys (`ns/name`) of the policies that select the pod for this direction.
    `allowed_by`: every rule that allows the connection (`ns/name ingress[2]`), sorted.
    """

    verdict: Verdict
    isolated_by: tuple[str, ...]
    allowed_by: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision for a connection: allowed only if both egress and ingress allow it."""

    verdict: Verdict
    egress: DirectionDecision
    ingress: DirectionDecision

    @property
    def reason(self) -> str:
        """`<verdict>: egress <reason>; ingress <reason>`."""
        return f"{self.verdict}: egress {self.egress.reason}; ingress {self.ingress.reason}"


class Engine:
    """A compiled PolicySet; `evaluate` is cheap and cached per distinct connection."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._cache = SelectorCache()
        by_namespace: dict[str, list[Target]] = defaultdict(list)
        refs = policies.refs()
        for p in policies.in_effect():
            key = refs[p.object_key]
            by_namespace[p.namespace].append(
                Target(
                    key=key,
                    namespace=p.namespace,
                    pod_selector=self._cache.intern(p.pod_selector),
                    selector_text=selector_target_text(p.pod_selector),
                    ingress=compile_rules(p.ingress, f"{key} ingress", p.namespace, self._cache, p.api)
                    if "Ingress" in p.policy_types
                    else None,
                    egress=compile_rules(p.egress, f"{key} egress", p.namespace, self._cache, p.api)
                    if "Egress" in p.policy_types
                    else None,
                )
            )
        self.targets: dict[str, tuple[Target, ...]] = {ns: tuple(ts) for ns, ts in by_namespace.items()}
        self.http: dict[str, tuple[HTTPRule, ...]] = {
            f"{refs[p.object_key]} {direction}[{i}]": rule.http
            for p in policies.in_effect()
            for direction, rules in (("ingress", p.ingress), ("egress", p.egress))
            for i, rule in enumerate(rules)
            if rule.http
        }
        self._decisions: dict[object, Decision] = {}
        self._signatures: dict[object, tuple[object, ...]] = {}
        self._peers = tuple(dict.fromkeys(
            peer
            for targets in self.targets.values()
            for target in targets
            for rules in (target.ingress, target.egress)
            for rule in rules or ()
            for peer in rule.peers
        ))

    def peer_signature(self, end: Endpoint, key: object = None) -> tuple[object, ...] | None:
        """How every peer of every rule judges `end` as the far end; None for a pod.

        Two endpoints that are not pods and share a signature get the same verdict and the same
        allowing rules in every connection with the same pod, protocol and port: nothing else about
        them is looked at (only the reasons' wording names them). An address no rule names shares one
        signature with every other such address. `key`: the end's `end_key`, when the caller has it.
        """
        if end.is_pod:
            return None
        key = end_key(end) if key is None else key
        found = self._signatures.get(key)
        if found is None:
            found = self._signatures[key] = (end.kind, *(_match_tag(p.match(end, self._cache)) for p in self._peers))
        return found

    def http_denied(
        self, decision: Decision, requests: Iterable[tuple[str, str, int]]
    ) -> tuple[tuple[tuple[str, str, int], ...], tuple[str, ...]]:
        """The requests (method, path, count) of an allowed connection that HTTP rules refuse, and the
        rules that refused them."""
        wanted = tuple(requests)
        if decision.verdict != Verdict.ALLOWED or not wanted or not self.http:
            return (), ()
        refused: dict[tuple[str, str], int] = {}
        by: set[str] = set()
        for side in (decision.egress, decision.ingress):
            refs = side.allowed_by
            if not refs or not all(ref in self.http for ref in refs):
                continue  # not isolated, or a rule without HTTP entries lets every request through
            entries = [entry for ref in refs for entry in self.http[ref]]
            for method, path, count in wanted:
                if not any(matches(entry, method, path) for entry in entries):
                    refused[(method, path)] = count
                    by.update(refs)
        return tuple((m, p, n) for (m, p), n in sorted(refused.items())), tuple(sorted(by))

    def evaluate(self, traffic: Traffic) -> Decision:
        """Decide one connection (a request, not a reply) and give the reasons."""
        protocol = traffic.protocol.upper()
        if protocol in DEFINED_PROTOCOLS and protocol != traffic.protocol:
            traffic = Traffic(traffic.src, traffic.dst, protocol, traffic.port)
        key = (end_key(traffic.src), end_key(traffic.dst), traffic.protocol, traffic.port)
        found = self._decisions.get(key)
        if found is None:
            if len(self._decisions) >= _CACHE_LIMIT:
                self._decisions.clear()
            found = self._decisions[key] = self._decide(traffic)
        return found

    def _decide(self, traffic: Traffic) -> Decision:
        if _is_loopback(traffic.src, traffic.dst):
            same = DirectionDecision(Verdict.ALLOWED, (), (), "allowed: a pod cannot block traffic to itself")
            return Decision(Verdict.ALLOWED, same, same)
        egress = self._direction(traffic.src, traffic.dst, "egress", traffic)
        ingress = self._direction(traffic.dst, traffic.src, "ingress", traffic)
        verdicts = (egress.verdict, ingress.verdict)
        if Verdict.DENIED in verdicts:
            verdict = Verdict.DENIED
        elif Verdict.UNKNOWN in verdicts:
            verdict = Verdict.UNKNOWN
        else:
            verdict = Verdict.ALLOWED
        return Decision(verdict, egress, ingress)

    def _direction(self, pod: Endpoint, remote: Endpoint, direction: Direction, traffic: Traffic) -> DirectionDecision:
        before = self._before_rules(pod, remote, direction, traffic)
        if isinstance(before, DirectionDecision):
            return before
        return self._by_rules(pod, remote, direction, traffic, before)

    def _before_rules(
        self, pod: Endpoint, remote: Endpoint, direction: Direction, traffic: Traffic
    ) -> DirectionDecision | list[tuple[Target, Match]]:
        """The decision when no rule needs to be looked at, else the policies that (maybe) select the pod."""
        if not pod.is_pod:
            reason = f"allowed: {pod.describe()} is not a pod, not isolated"
            return DirectionDecision(Verdict.ALLOWED, (), (), reason)
        selecting = self._selecting(pod, direction)
        if direction == "ingress" and remote.kind == "host":
            known = [] if isinstance(selecting, Unknown) else selecting
            isolated = tuple(t.key for t, m in known if m is True)
            reason = "allowed: from the pod's own node, which is always allowed"
            return DirectionDecision(Verdict.ALLOWED, isolated, (), reason)
        if isinstance(selecting, Unknown):
            return DirectionDecision(Verdict.UNKNOWN, (), (), f"unknown: {selecting.reason}")
        if not selecting:
            reason = f"allowed: {pod.describe()} is not selected by any {direction} policy, not isolated"
            return DirectionDecision(Verdict.ALLOWED, (), (), reason)
        if traffic.protocol not in DEFINED_PROTOCOLS:
            reason = (
                f"unknown: {traffic.protocol} is not defined by NetworkPolicy and {pod.describe()} "
                f"is isolated for {direction}"
            )
            return DirectionDecision(Verdict.UNKNOWN, tuple(t.key for t, m in selecting if m is True), (), reason)
        return selecting

    def _by_rules(
        self,
        pod: Endpoint,
        remote: Endpoint,
        direction: Direction,
        traffic: Traffic,
        selecting: list[tuple[Target, Match]],
    ) -> DirectionDecision:
        """Allowed when a rule of a policy that selects the pod matches; unknown when one might."""
        isolated_by = tuple(t.key for t, m in selecting if m is True)
        allowed_by: list[str] = []
        unknown: Unknown | None = None
        for target, selected in selecting:
            rules = target.ingress if direction == "ingress" else target.egress
            for rule in rules or ():
                match = rule.match(remote, traffic, self._cache)
                if match is True and selected is True:
                    allowed_by.append(rule.ref)
                elif match is not False and unknown is None:
                    candidate = match if isinstance(match, Unknown) else selected
                    unknown = candidate if isinstance(candidate, Unknown) else None
        if allowed_by:
            refs = tuple(sorted(allowed_by))
            return DirectionDecision(Verdict.ALLOWED, isolated_by, refs, f"allowed by {', '.join(refs)}")
        if not isolated_by:  # only possibly selected: isolation itself is unknown
            first = next(m for _, m in selecting if isinstance(m, Unknown))
            return DirectionDecision(Verdict.UNKNOWN, (), (), f"unknown: {first.reason}")
        if unknown is not None:
            return DirectionDecision(Verdict.UNKNOWN, isolated_by, (), f"unknown: {unknown.reason}")
        toward = "from" if direction == "ingress" else "to"
        port = "*" if traffic.port is None else traffic.port
        reason = (
            f"denied: {pod.describe()} is isolated for {direction} by {', '.join(isolated_by)} and no rule "
            f"allows {traffic.protocol}/{port} {toward} {remote.describe()}"
        )
        isolating = [(t.ingress if direction == "ingress" else t.egress) or () for t, _ in selecting]
        note = _named_ports_note([rule for rules in isolating for rule in rules], traffic.dst, direction == "ingress")
        return DirectionDecision(Verdict.DENIED, isolated_by, (), reason + note)

    def _selecting(self, pod: Endpoint, direction: Direction) -> list[tuple[Target, Match]] | Unknown:
        """Policies of the pod's namespace that isolate this direction and (maybe) select the pod."""
        if pod.namespace is None:
            return Unknown(f"namespace of {pod.describe()} unknown") if self.targets else []
        selecting: list[tuple[Target, Match]] = []
        for target in self.targets.get(pod.namespace, ()):
            if (target.ingress if direction == "ingress" else target.egress) is None:
                continue
            match = target.selects(pod, self._cache)
            if match is not False:
                selecting.append((target, match))
        return selecting


def _named_ports_note(rules: Iterable[CompiledRule], dst: Endpoint, own: bool) -> str:
    """What the port names these rules use are on the destination (` (its named ports: http is
    TCP/8080)`, or `of pod x/a` when it is the far end), so a denial by a named-port rule says why the
    port did not match; "" when the rules name no port or the destination's ports are unknown."""
    names = sorted({p.port for rule in rules for p in rule.ports if isinstance(p.port, str)})
    if not names or dst.named_ports is None:
        return ""
    declared = dst.named_ports
    parts = [f"{n} is {declared[n][1]}/{declared[n][0]}" if n in declared else f"{n} is not declared" for n in names]
    whose = "its named ports" if own else f"named ports of {dst.describe()}"
    return f" ({whose}: {', '.join(parts)})"


def _is_loopback(src: Endpoint, dst: Endpoint) -> bool:
    if not (src.is_pod and dst.is_pod):
        return False
    if src.name is not None and src.namespace is not None:
        return (src.namespace, src.name) == (dst.namespace, dst.name)
    return src.ip is not None and src.ip == dst.ip


def _match_tag(match: Match) -> object:
    return match if isinstance(match, bool) else ("unknown", match.reason)


def end_key(end: Endpoint) -> object:
    """What the engine's decisions depend on in an endpoint (equal keys, equal decisions)."""
    return (
        end.kind,
        end.namespace,
        end.name,
        labels_key(end.labels),
        labels_key(end.namespace_labels),
        end.ip,
        end.names,
        None if end.named_ports is None else tuple(sorted(end.named_ports.items())),
        None if end.unresolved_ports is None else tuple(sorted(end.unresolved_ports.items())),
    )


def explain(policies: PolicySet) -> str:
    """A sorted, byte-comparable table of targets and their rules, one block per policy."""
    engine = Engine(policies)
    lines: list[str] = []
    for namespace in sorted(engine.targets):
        for target in sorted(engine.targets[namespace], key=lambda t: t.key):
            lines.append(f"{target.key}: pods {target.selector_text} in namespace {namespace}")
            directions = (("ingress", target.ingress, "from"), ("egress", target.egress, "to"))
            for direction, rules, word in directions:
                if rules is None:
                    continue
                if not rules:
                    lines.append(f"  {direction}: deny all")
                for rule in rules:
                    lines.append(f"  {rule.ref.split(' ', 1)[1]}  {rule.describe(word)}")
    return "".join(line + "\n" for line in lines)
