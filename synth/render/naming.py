"""Generated rules with the evidence behind them, in words a reviewer reads: workloads, not label strings.

`Naming` turns selectors into workload names (`payments/api`) and addresses into DNS names where
the flows carried them; `workload_rules` lists every rule of every policy, grouped by the
workload the policy selects, with flows, pods and first/last seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from synth.base.config import NAMESPACE_NAME_LABEL
from synth.core.aggregate import EdgeSet
from synth.core.identity import Identity
from synth.core.model import NetworkPolicy, Peer, PolicySet, Rule
from synth.policy.observed import EndpointRef

__all__ = ["ANYWHERE", "Naming", "RuleEvidence", "WorkloadRules", "peer_namespace", "ports_text", "workload_rules"]

ANYWHERE = frozenset({"0.0.0.0/0", "::/0"})


@dataclass(frozen=True, slots=True)
class RuleEvidence:
    """One generated rule (one peer of it) and what was observed behind it."""

    policy: str
    direction: str
    peer: str
    peer_kind: str  # pod | namespace | world | anywhere | kube-apiserver | host | ...
    ports: str
    flows: int
    pods: int
    peer_pods: int
    first_seen: datetime | None
    last_seen: datetime | None
    names: tuple[str, ...]
    notes: tuple[str, ...]
    addresses: tuple[str, ...] = ()  # the addresses seen behind a DNS-name rule
    pattern: str = ""  # the DNS-name pattern of the peer (then `names` are the names seen under it)
    requests: tuple[str, ...] = ()  # each HTTP entry of a Cilium L7 rule, with the requests behind it


@dataclass(frozen=True, slots=True)
class WorkloadRules:
    """The rules of the policies that select one workload (or every pod, for allow-dns)."""

    namespace: str
    workload: str
    selector: str
    method: str
    policies: tuple[str, ...]
    rules: tuple[RuleEvidence, ...]


def utc(value: datetime | None) -> datetime | None:
    """To the second, as a plain UTC datetime (edge tables hand out nanosecond pandas timestamps)."""
    return None if value is None else datetime.fromtimestamp(int(value.timestamp()), tz=UTC)


def peer_namespace(peer: Peer, own: str) -> str | None:
    """The one namespace a peer's pods are in, or None when its namespace selector is broader."""
    if peer.namespace_selector is None:
        return own
    labels = dict(peer.namespace_selector.match_labels)
    if len(labels) == 1 and not peer.namespace_selector.match_expressions:
        return labels.get(NAMESPACE_NAME_LABEL)
    return None


class Naming:
    """Readable names for selectors and addresses, from the edges' identities and DNS names."""

    def __init__(self, edges: EdgeSet) -> None:
        self.identities: dict[tuple[str, str], Identity] = dict(edges.identities)
        self.addresses = edges.names
        self.kinds: dict[str, str] = {}
        for edge in edges.edges:
            for end in (edge.src, edge.dst):
                if end.kind != "pod" and end.selector:
                    self.kinds.setdefault(end.selector, end.kind)

    def workload(self, namespace: str | None, selector: str) -> str:
        """`api` for the identity with this selector (its workloads' names), else the selector."""
        identity = self.identities.get((namespace or "", selector))
        if identity is None:
            return selector or "{}"
        return ", ".join(_short(w) for w in identity.workloads) or identity.name

    def workloads(self, namespace: str, selector: str) -> str:
        """`Deployment/api` (kinds kept, as findings name them), else the selector."""
        identity = self.identities.get((namespace, selector))
        return ", ".join(identity.workloads) if identity is not None else selector or "{}"

    def ref(self, ref: EndpointRef) -> str:
        """`namespace/workload`, or `kind address (DNS names)`."""
        if ref.kind == "pod":
            return f"{ref.namespace}/{self.workload(ref.namespace, ref.selector)}"
        return self.address(ref.kind, ref.selector)

    def address(self, kind: str, cidr: str) -> str:
        """`world 203.0.113.10/32 (api.example.com)`."""
        names = self.dns(cidr)
        return f"{kind} {cidr}".strip() + (f" ({', '.join(names)})" if names else "")

    def dns(self, cidr: str) -> tuple[str, ...]:
        """The DNS names seen for the address of a `/32` or `/128`."""
        return self.addresses.get(cidr.split("/", 1)[0], ())

    def peer_kind(self, peer: Peer) -> str:
        """What a rule's peer is: pod, namespace, anywhere, dns-name, entity, or the kind of endpoint
        behind an ipBlock."""
        if peer.fqdn is not None:
            return "dns-name"
        if peer.entity is not None:
            return "entity"
        if peer.ip_block is not None:
            cidr = peer.ip_block.cidr
            return "anywhere" if cidr in ANYWHERE else self.kinds.get(cidr, "world")
        return "pod" if peer.pod_selector is not None else "namespace"

    def peer(self, peer: Peer, own: str) -> str:
        """A rule's peer as `namespace/workload`, `any address (0.0.0.0/0)`, `world 203.0.113.10/32`,
        `DNS name api.example.com` or `entity kube-apiserver`."""
        if peer.fqdn is not None:
            return f"DNS {'pattern' if peer.fqdn.pattern else 'name'} {peer.fqdn.text}"
        if peer.entity is not None:
            return f"entity {peer.entity}"
        if peer.ip_block is not None:
            cidr = peer.ip_block.cidr
            if cidr in ANYWHERE:
                return f"any address ({cidr})"
            return f"{self.kinds.get(cidr, 'world')} {cidr}"  # DNS names have their own column
        namespace = peer_namespace(peer, own)
        namespaces = peer.namespace_selector.canonical() if peer.namespace_selector else own
        if peer.pod_selector is None:
            return f"every pod in {namespace}" if namespace else f"every pod in namespaces {{{namespaces}}}"
        selector = peer.pod_selector.canonical()
        if namespace is None:
            return f"pods {{{selector}}} in namespaces {{{namespaces}}}"
        return f"{namespace}/{self.workload(namespace, selector)}"

    def subject(self, policy: NetworkPolicy) -> tuple[str, str]:
        """(workloads, selection method) of the pods a policy selects."""
        if policy.pod_selector.is_empty:
            return "every pod", "all"
        identity = self.identities.get((policy.namespace, policy.pod_selector.canonical()))
        if identity is None:
            return policy.pod_selector.canonical(), "unknown"
        return ", ".join(identity.workloads), identity.method


def _short(workload: str) -> str:
    """`api` for `Deployment/api` (the kind ends at the first slash; names may hold more)."""
    _kind, slash, name = workload.partition("/")
    return name if slash and name else workload


def ports_text(rule: Rule) -> list[str]:
    """`TCP 443`, `UDP 53`, `TCP 8000-8080`; `any port` when the rule has none."""
    if not rule.ports:
        return ["any port"]
    texts = []
    for port in rule.ports:
        number = "" if port.port is None else f" {port.port}" + (f"-{port.end_port}" if port.end_port else "")
        texts.append(f"{port.protocol}{number}")
    return texts


def workload_rules(policies: PolicySet, naming: Naming) -> Iterable[WorkloadRules]:
    """Every rule of every policy, grouped by namespace and the pods the policy selects."""
    groups: dict[tuple[str, str], list[NetworkPolicy]] = {}
    for policy in policies.policies:
        if policy.ingress or policy.egress:
            groups.setdefault((policy.namespace, policy.pod_selector.canonical()), []).append(policy)
    named = {key: naming.subject(members[0]) for key, members in groups.items()}
    for namespace, selector in sorted(groups, key=lambda k: (k[0], k[1] != "", _short(named[k][0]), k[1])):
        members = groups[(namespace, selector)]
        workload, method = named[(namespace, selector)]
        rules = [
            evidence
            for policy in members
            for direction, rule_list in (("ingress", policy.ingress), ("egress", policy.egress))
            for rule in rule_list
            for evidence in _rule_evidence(policy, direction, rule, naming)
        ]
        yield WorkloadRules(namespace, workload, selector, method, tuple(p.name for p in members), tuple(rules))


def _rule_evidence(policy: NetworkPolicy, direction: str, rule: Rule, naming: Naming) -> Iterable[RuleEvidence]:
    evidence = rule.evidence
    for peer in rule.peers or (Peer(),):
        names = evidence.names if evidence is not None else ()
        if peer.ip_block is not None and not names:
            names = naming.dns(peer.ip_block.cidr)
        if peer.fqdn is not None and not (peer.fqdn.pattern and names):
            names = (peer.fqdn.text,)
        yield RuleEvidence(
            policy=policy.name,
            direction=direction,
            peer=naming.peer(peer, policy.namespace) if rule.peers else "any peer",
            peer_kind=naming.peer_kind(peer) if rule.peers else "anywhere",
            ports=", ".join(ports_text(rule)),
            flows=evidence.flows if evidence else 0,
            pods=len(evidence.pods) if evidence else 0,
            peer_pods=len(evidence.peer_pods) if evidence else 0,
            first_seen=utc(evidence.first_seen) if evidence else None,
            last_seen=utc(evidence.last_seen) if evidence else None,
            names=tuple(names),
            notes=evidence.notes if evidence else (),
            addresses=evidence.addresses if evidence else (),
            pattern=peer.fqdn.text if peer.fqdn is not None and peer.fqdn.pattern else "",
            requests=evidence.requests if evidence else (),
        )
