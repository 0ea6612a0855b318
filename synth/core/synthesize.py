"""Edges to a least-privilege PolicySet: the rules of generation, made in one place.

Per namespace: `default-deny`, `allow-dns`, then one ingress and one egress policy per workload
with traffic (in a Calico tier other than `default`, each name starts with `<tier>.`), one rule per
peer, its ports grouped, never broader than what was seen. What cannot or must not become a rule
(host and node traffic, ICMP, denied attempts, unselectable workloads) becomes a `Finding` for the
report instead. The widenings are asked for: world egress by DNS name
goes by a pattern of `PolicyFormat.fqdn_patterns` for the names seen that it matches, and only
where a name seen falls under it; with `PolicyFormat.l7` (Cilium), HTTP rules name each request
seen, identifiers in paths generalised as `synth.core.l7` says.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from synth.base.config import NAMESPACE_NAME_LABEL, Settings
from synth.base.errors import GenerationError
from synth.core.aggregate import Edge, EdgeSet, Side, datetime_of
from synth.core.dnsnames import covering_pattern
from synth.core.enforceability import unenforceable_reason
from synth.core.identity import Identity, policy_base_names, selection_problems
from synth.core.l7 import MAX_L7_PORTS, HTTPEvidence, http_rules
from synth.core.model import (
    FQDN,
    KUBERNETES,
    Evidence,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyFormat,
    PolicySet,
    PortSpec,
    Protocol,
    Rule,
)

MANAGED_BY = (("app.kubernetes.io/managed-by", "synth"),)
DEFAULT_DENY = "default-deny"  # applied last, removed first: the roll-out names it (`PolicyFormat.policy_name`)
ALLOW_DNS = "allow-dns"
_RULE_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
_NODE_KINDS = frozenset({"host", "remote-node", "health", "ingress"})
_DNS_NAME = re.compile(r"[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?)*")


class FindingKind(StrEnum):
    """What a finding is about; the report groups findings by kind (`synth.render.risks`)."""

    PUBLIC_EXPOSURE = "public-exposure"
    EXTERNAL_EGRESS = "external-egress"
    KUBE_APISERVER = "kube-apiserver"
    HOST_TRAFFIC = "host-traffic"
    ICMP = "icmp"
    DENIED_ATTEMPT = "denied-attempt"
    UNSELECTABLE = "unselectable"
    REJECTED_LABELS = "rejected-labels"
    INTERSECTION_SELECTOR = "intersection-selector"
    PRIVATE_WORLD = "private-world"
    DNS_NOT_COVERED = "dns-not-covered"
    UNKNOWN_PEER = "unknown-peer"
    NOT_ENFORCEABLE = "not-enforceable"
    INSEPARABLE = "inseparable"  # workloads no stable label tells apart: one selector, its rules cover all
    HTTP_L4 = "http-l4"  # with --l7: a port with HTTP requests that keeps a plain L4 rule, and why


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a reviewer must know: traffic not turned into a rule, or a rule with a risk."""

    kind: FindingKind
    namespace: str
    subject: str
    detail: str
    flows: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Synthesis:
    """Generated policies and the findings that go with them."""

    policies: PolicySet
    findings: tuple[Finding, ...]
    namespaces: tuple[str, ...]
    format: PolicyFormat = KUBERNETES


@dataclass(slots=True)
class _Seen:
    """Flows and window of one port of a rule."""

    flows: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, edge: Edge) -> None:
        self.flows += edge.count
        self.first = edge.first_seen if self.first is None else min(self.first, edge.first_seen)
        self.last = edge.last_seen if self.last is None else max(self.last, edge.last_seen)

    def merged(self, other: _Seen) -> _Seen:
        return _Seen(
            self.flows + other.flows,
            min(filter(None, (self.first, other.first)), default=None),
            max(filter(None, (self.last, other.last)), default=None),
        )


@dataclass(slots=True)
class _RuleDraft:
    """One peer's rule in the making. `requests` are the HTTP requests seen per port; `plain` the
    ports some edge used without any (such a port cannot take an HTTP rule)."""

    ports: set[tuple[str, int]] = field(default_factory=set)
    flows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    pods: set[str] = field(default_factory=set)
    peer_pods: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    notes: set[str] = field(default_factory=set)
    verdicts: Counter[str] = field(default_factory=Counter)  # flows per verdict other than forwarded
    addresses: set[str] = field(default_factory=set)
    by_port: dict[tuple[str, int], _Seen] = field(default_factory=dict)
    requests: dict[tuple[str, int], Counter[tuple[str, str]]] = field(default_factory=dict)
    plain: set[tuple[str, int]] = field(default_factory=set)

    def add(self, edge: Edge, own_pods: Iterable[str], peer_pods: Iterable[str]) -> None:
        if edge.protocol in _RULE_PROTOCOLS and edge.port is not None:
            port = (edge.protocol, edge.port)
            self.ports.add(port)
            self.by_port.setdefault(port, _Seen()).add(edge)
            if edge.requests:
                counter = self.requests.setdefault(port, Counter())
                for method, path, count in edge.requests:
                    counter[(method, path)] += count
            else:
                self.plain.add(port)
        self.flows += edge.count
        self.first = edge.first_seen if self.first is None else min(self.first, edge.first_seen)
        self.last = edge.last_seen if self.last is None else max(self.last, edge.last_seen)
        self.pods.update(own_pods)
        self.peer_pods.update(peer_pods)
        for verdict, count in edge.verdicts:
            if verdict != "forwarded":
                self.verdicts[verdict] += count
        if not edge.allowed:
            self.notes.add("from denied attempts (--allow-dropped)")

    def http_entries(self, port: tuple[str, int], max_paths: int) -> tuple[HTTPEvidence, ...] | None:
        """The HTTP rule entries for the requests seen on `port`; None when there are none or too many."""
        counter = self.requests.get(port)
        if not counter or port in self.plain:
            return None
        return http_rules(((method, path, n) for (method, path), n in counter.items()), max_paths)

    def rule(self, peer: Peer, ports: set[tuple[str, int]] | None = None,
             http: tuple[HTTPEvidence, ...] = ()) -> Rule:
        """The rule for `peer` on `ports` (all of them by default), with its HTTP entries if any."""
        chosen = self.ports if ports is None else ports
        seen = _Seen()  # every edge a draft takes has a rule protocol and port: its flows are those of its ports
        for port in chosen:
            seen = seen.merged(self.by_port.get(port, _Seen()))
        first, last = seen.first or self.first, seen.last or self.last
        assert first is not None and last is not None
        evidence = Evidence(
            seen.flows,
            first,
            last,
            tuple(sorted(self.pods)),
            tuple(sorted(self.peer_pods)),
            tuple(sorted(self.names)),
            tuple(sorted(self.notes | {f"{verdict}: {count}" for verdict, count in self.verdicts.items()})),
            tuple(sorted(self.addresses, key=_address_order)),
            tuple(entry.line() for entry in http),
        )
        specs = tuple(PortSpec(protocol=p, port=n) for p, n in sorted(chosen))  # type: ignore[arg-type]
        return Rule(peers=(peer,), ports=specs, evidence=evidence, http=tuple(entry.rule for entry in http))


def synthesize(
    edges: EdgeSet, namespaces: Sequence[str], settings: Settings, policy_format: PolicyFormat = KUBERNETES
) -> Synthesis:
    """The policies for each namespace from the edges that touch it, written for `policy_format`'s API."""
    rows = edges.edges
    policies: list[NetworkPolicy] = []
    findings: list[Finding] = []
    for namespace in sorted(set(namespaces)):
        builder = _NamespaceBuilder(namespace, edges, settings, policy_format)
        for row in rows:
            builder.add(row)
        policies.extend(builder.policies())
        findings.extend(builder.findings)
    findings.sort(key=lambda f: (f.namespace, f.kind, f.subject, f.detail))
    _check_selection(policies, edges, settings)
    return Synthesis(PolicySet.of(policies), tuple(findings), tuple(sorted(set(namespaces))), policy_format)


def _check_selection(policies: list[NetworkPolicy], edges: EdgeSet, settings: Settings) -> None:
    """Every generated selector selects exactly its workload's pods among every pod seen in the
    namespace (none of another workload's): a failure is a bug, and the policies must not be applied."""
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for edge in edges.edges:
        for end in (edge.src, edge.dst):
            if end.kind == "pod" and not end.selector.startswith("?"):
                members[(end.namespace or "", end.selector)].update(end.pods)
    skip = (LabelSelector(settings.dns.pod_labels),)
    problems = selection_problems(policies, members, edges.pod_labels, skip)
    if problems:
        raise GenerationError(
            "the generated selectors fail their check (a bug in synth; please report it, and do not apply "
            "the policies):\n  " + "\n  ".join(problems)
        )


class _NamespaceBuilder:
    def __init__(self, namespace: str, edges: EdgeSet, settings: Settings, policy_format: PolicyFormat) -> None:
        self.namespace = namespace
        self.edges = edges
        self.settings = settings
        self.format = policy_format
        self.identities = {key[1]: ident for key, ident in edges.identities.items() if key[0] == namespace}
        self.names = policy_base_names(self.identities.values())
        self.egress: dict[str, dict[Any, _RuleDraft]] = defaultdict(dict)
        self.ingress: dict[str, dict[Any, _RuleDraft]] = defaultdict(dict)
        self.world_ingress: dict[tuple[str, str, int], list[Edge]] = defaultdict(list)
        self.dns = _RuleDraft()
        # each finding with the distinct edges behind it, so its flows are those of every edge, once
        self._found: dict[tuple[FindingKind, str, str], set[Edge]] = {}

    # ----- edges in
    def add(self, edge: Edge) -> None:
        own_src = edge.src.kind == "pod" and edge.src.namespace == self.namespace
        own_dst = edge.dst.kind == "pod" and edge.dst.namespace == self.namespace
        if not own_src and not own_dst:
            return
        if not edge.allowed and not self.settings.allow_dropped:
            self._denied(edge, own_src)
            return
        reason = unenforceable_reason(edge)
        if reason is not None:
            self._find(FindingKind.NOT_ENFORCEABLE, _peer_text(edge, "src" if own_src else "dst"),
                       f"{_peer_text(edge, 'src')} → {_peer_text(edge, 'dst')} on {_port_text(edge)}: {reason}", edge)
            return
        if edge.protocol not in _RULE_PROTOCOLS or edge.port is None:
            subject = _peer_text(edge, "src" if own_src else "dst")
            self._find(
                FindingKind.ICMP,
                subject,
                f"{edge.protocol} to {_peer_text(edge, 'dst')}: NetworkPolicy does not define "
                "this protocol; whether default-deny blocks it depends on the CNI",
                edge,
            )
        if own_src and self._usable(edge, "src"):
            self._egress(edge)
        if own_dst and self._usable(edge, "dst"):
            self._ingress(edge)

    def _usable(self, edge: Edge, side: Side) -> bool:
        identity = self.identities.get(edge.end(side).selector)
        if identity is None or identity.method == "none":
            workloads = ", ".join(edge.end(side).workloads) or edge.end(side).selector
            self._find(
                FindingKind.UNSELECTABLE,
                workloads,
                "no label is shared by every pod of this workload, so no selector "
                "can name it; its traffic is not turned into rules",
                edge,
            )
            return False
        return True

    def _egress(self, edge: Edge) -> None:
        if edge.protocol not in _RULE_PROTOCOLS or edge.port is None:
            return
        if self._is_dns(edge):
            self.dns.add(edge, edge.src.pods, edge.dst.pods)
            return
        peer = self._peer(edge, "dst", _peer_text(edge, "src"))
        names = dns_names(edge.dst_names) if edge.dst.kind == "world" and self.format.by_name else ()
        if peer is not None and names:
            # one rule per name or pattern: its ports are those used to any address a name under it had
            for fqdn, behind in self._name_peers(names).items():
                draft = self.egress[edge.src.selector].setdefault(Peer(fqdn=fqdn), _RuleDraft())
                draft.add(edge, edge.src.pods, ())
                draft.addresses.add(edge.dst.selector)
                if fqdn.pattern:
                    draft.names.update(behind)
        elif peer is not None:
            draft = self.egress[edge.src.selector].setdefault(peer, _RuleDraft())
            draft.add(edge, edge.src.pods, edge.dst.pods)
            draft.names.update(edge.dst_names)

    def _name_peers(self, names: Iterable[str]) -> dict[FQDN, set[str]]:
        """Each name seen as itself, or as the first pattern the user asked for that matches it (one
        entry per pattern, with the names behind it): a pattern no name falls under is never made."""
        found: dict[FQDN, set[str]] = {}
        for name in names:
            pattern = covering_pattern(name, self.format.fqdn_patterns, self.format.api)
            found.setdefault(FQDN(name) if pattern is None else FQDN(pattern, pattern=True), set()).add(name)
        return found

    def _ingress(self, edge: Edge) -> None:
        if edge.protocol not in _RULE_PROTOCOLS or edge.port is None:
            return
        if edge.src.kind == "world":
            self.world_ingress[(edge.dst.selector, edge.protocol, edge.port)].append(edge)
            return
        if edge.src.kind == "host" and not (self.format.api == "cilium" and self.settings.allow_host_traffic):
            self._find(
                FindingKind.HOST_TRAFFIC,
                _peer_text(edge, "dst"),
                f"ingress from the local node on {_port_text(edge)} (kubelet "
                "probes): NetworkPolicy always allows it; some CNIs need a node policy",
                edge,
            )
            return
        if edge.src.kind == "pod" and self._selects_dns_pods(edge):
            self._dns_ingress(edge)
            return
        peer = self._peer(edge, "src", _peer_text(edge, "dst"))
        if peer is not None:
            self.ingress[edge.dst.selector].setdefault(peer, _RuleDraft()).add(
                edge, edge.dst.pods, edge.src.pods
            )

    def _dns_ingress(self, edge: Edge) -> None:
        """Cluster DNS admits every pod that `allow-dns` lets send, on every DNS port and protocol:
        a pod not seen resolving names in the window must not lose name resolution."""
        draft = self.ingress[edge.dst.selector].setdefault(_EVERY_POD, _RuleDraft())
        draft.add(edge, edge.dst.pods, edge.src.pods)
        draft.ports.update((protocol, port) for port in self.settings.dns.ports for protocol in ("UDP", "TCP"))
        draft.notes.add("every pod may resolve names: allow-dns lets every pod send DNS here")

    def _peer(self, edge: Edge, side: Side, subject: str) -> Peer | None:
        kind, selector = edge.end(side).kind, edge.end(side).selector
        if kind == "pod":
            namespace = edge.end(side).namespace or ""
            identity = self.edges.identities.get((namespace, selector))
            if identity is None or identity.method == "none":
                self._find(
                    FindingKind.UNSELECTABLE,
                    ", ".join(edge.end(side).workloads) or selector,
                    f"peer in {namespace} has no shared label; traffic with it is not turned into rules",
                    edge,
                )
                return None
            if identity.method == "intersection":
                self._find(
                    FindingKind.INTERSECTION_SELECTOR,
                    f"{namespace}/{identity.name}",
                    f"selector {identity.selector.canonical()} is the intersection of the pods' labels: no "
                    "stable identity key (app.kubernetes.io/name, app, k8s-app, name)",
                    edge,
                )
            if namespace == self.namespace:
                return Peer(pod_selector=identity.selector)
            return Peer(
                namespace_selector=LabelSelector.of({NAMESPACE_NAME_LABEL: namespace}), pod_selector=identity.selector
            )
        if kind == "world":
            if _is_private(selector):
                self._find(
                    FindingKind.PRIVATE_WORLD,
                    subject,
                    f"{selector} is a private address reported as outside the "
                    "cluster; it may be a pod or node whose identity was not resolved",
                    edge,
                )
            if side == "dst":
                self._find(
                    FindingKind.EXTERNAL_EGRESS,
                    subject,
                    f"to {selector} on {_port_text(edge)}"
                    + (f" ({', '.join(edge.dst_names)})" if edge.dst_names else " (no DNS name seen)")
                    + ": an address that may change",
                    edge,
                )
            return Peer(ip_block=IPBlock(selector)) if selector else None
        if kind == "kube-apiserver" and selector:
            return self._api_server_peer(edge, side, subject)
        if kind in _NODE_KINDS and selector:
            return self._node_peer(edge, side, subject)
        self._find(
            FindingKind.UNKNOWN_PEER,
            subject,
            f"{_direction(side)} an endpoint of unknown identity ({selector or 'no address'}) "
            f"on {_port_text(edge)}: not turned into a rule",
            edge,
        )
        return None

    def _api_server_peer(self, edge: Edge, side: Side, subject: str) -> Peer:
        """The API server: Cilium's `kube-apiserver` entity, else its address."""
        selector, by_entity = edge.end(side).selector, self.format.api == "cilium"
        self._find(
            FindingKind.KUBE_APISERVER,
            subject,
            f"{_direction(side)} kube-apiserver at {selector} on {_port_text(edge)}: "
            + ("allowed by the kube-apiserver entity" if by_entity else
               "allowed by address; with Cilium use toEntities: kube-apiserver"),
            edge,
        )
        return Peer(entity="kube-apiserver") if by_entity else Peer(ip_block=IPBlock(selector))

    def _node_peer(self, edge: Edge, side: Side, subject: str) -> Peer | None:
        """Node traffic: a rule only with --allow-host-traffic (Cilium: by entity, else by address)."""
        kind, selector = edge.end(side).kind, edge.end(side).selector
        by_entity = self.format.api == "cilium"
        self._find(
            FindingKind.HOST_TRAFFIC,
            subject,
            f"{_direction(side)} {kind} {selector} on {_port_text(edge)}: node "
            "traffic is "
            + (
                (f"allowed by the {kind} entity (--allow-host-traffic)" if by_entity else
                 "allowed by address (--allow-host-traffic)")
                if self.settings.allow_host_traffic
                else "not turned into rules; use the CNI's node policy or --allow-host-traffic"
            ),
            edge,
        )
        if not self.settings.allow_host_traffic:
            return None
        return Peer(entity=kind) if by_entity else Peer(ip_block=IPBlock(selector))

    def _selects_dns_pods(self, edge: Edge) -> bool:
        """Whether the edge goes to the cluster DNS pods (by the settings) on a DNS port."""
        dns = self.settings.dns
        if edge.dst.kind != "pod" or edge.dst.namespace != dns.namespace or edge.port not in dns.ports:
            return False
        if edge.protocol not in ("UDP", "TCP"):
            return False
        wanted = LabelSelector(dns.pod_labels)
        pods = [self.edges.pod_labels.get((dns.namespace, pod)) for pod in edge.dst.pods]
        return bool(pods) and all(labels is not None and wanted.matches(dict(labels)) for labels in pods)

    def _is_dns(self, edge: Edge) -> bool:
        dns = self.settings.dns
        if edge.dst.kind != "pod" or edge.dst.namespace != dns.namespace or edge.port not in dns.ports:
            return False
        if edge.protocol not in ("UDP", "TCP"):
            return False
        if self._selects_dns_pods(edge):
            return True
        wanted = LabelSelector(dns.pod_labels)
        self._find(
            FindingKind.DNS_NOT_COVERED,
            _peer_text(edge, "src"),
            f"DNS to {dns.namespace} pods {', '.join(edge.dst.pods)} "
            f"that {wanted.canonical()} does not select: allowed by their own rule; check the DNS settings",
            edge,
        )
        return False

    def _denied(self, edge: Edge, own_src: bool) -> None:
        subject = _peer_text(edge, "src" if own_src else "dst")
        self._find(
            FindingKind.DENIED_ATTEMPT,
            subject,
            f"{_peer_text(edge, 'src')} → {_peer_text(edge, 'dst')} on "
            f"{_port_text(edge)} was dropped by policy; the new policies keep blocking it",
            edge,
        )

    def _find(self, kind: FindingKind, subject: str, detail: str, *edges: Edge) -> None:
        self._found.setdefault((kind, subject, detail), set()).update(edges)

    @property
    def findings(self) -> list[Finding]:
        """The findings so far, each with the flows and window of all its edges."""
        result = []
        for (kind, subject, detail), edges in self._found.items():
            if not edges:
                result.append(Finding(kind, self.namespace, subject, detail))
                continue
            flows = sum(e.count for e in edges)
            first, last = min(e.first_ns for e in edges), max(e.last_ns for e in edges)
            result.append(Finding(kind, self.namespace, subject, detail, flows, datetime_of(first), datetime_of(last)))
        return result

    # ----- policies out
    def policies(self) -> list[NetworkPolicy]:
        for identity in sorted(self.identities.values(), key=lambda i: i.key):
            if identity.rejected_labels:
                self._find(FindingKind.REJECTED_LABELS, ", ".join(identity.workloads),
                           f"labels that are not valid Kubernetes labels were left out of the selector: "
                           f"{', '.join(identity.rejected_labels)}")
            if identity.merged and identity.method != "none":
                self._find(FindingKind.INSEPARABLE, f"{self.namespace}/{', '.join(identity.workloads)}",
                           f"cannot be separated by labels: label the pods. One selector {{{identity.key}}} "
                           "selects the pods of all these workloads, so each may use the rules made from the "
                           "others' traffic (broader than observed)")
        self._public_ingress()
        result = [self._default_deny(), self._allow_dns()]
        for selector in sorted(set(self.ingress) | set(self.egress)):
            identity = self.identities[selector]
            base = self.names[(self.namespace, selector)]
            http = self._http_ports(identity, self.ingress.get(selector, {}), self.egress.get(selector, {}))
            if self.ingress.get(selector):
                result.append(self._workload_policy(identity, f"{base}-ingress", "Ingress", self.ingress[selector],
                                                    http["Ingress"]))
            if self.egress.get(selector):
                result.append(self._workload_policy(identity, f"{base}-egress", "Egress", self.egress[selector],
                                                    http["Egress"]))
        return [self._native(policy) for policy in result]

    def _native(self, policy: NetworkPolicy) -> NetworkPolicy:
        """The policy as the chosen API writes it (Calico: in a tier, with an order, named for its tier)."""
        fmt = self.format
        if fmt.api == "kubernetes":
            return policy
        if fmt.api == "cilium":
            return replace(policy, api="cilium")
        return replace(policy, name=fmt.policy_name(policy.name), api="calico", tier=fmt.tier, order=fmt.order,
                       staged=fmt.staged)

    def _by_name(self) -> bool:
        """Whether a rule of the namespace allows egress by DNS name (the DNS proxy must then learn addresses)."""
        return any(peer.fqdn is not None for drafts in self.egress.values() for peer in drafts)

    def _public_ingress(self) -> None:
        threshold = self.settings.public_ingress_threshold
        for (selector, protocol, port), group in sorted(self.world_ingress.items()):
            sources = {edge.src.selector for edge in group if edge.src.selector}
            drafts = self.ingress[selector]
            if len(sources) >= threshold:
                merged = _RuleDraft()
                for edge in group:
                    merged.add(edge, edge.dst.pods, ())
                merged.notes.add(f"{len(sources)} distinct external sources")
                cidrs = ["0.0.0.0/0"] + (["::/0"] if any(":" in s for s in sources) else [])
                for cidr in cidrs:
                    drafts[Peer(ip_block=IPBlock(cidr))] = _merge_port(drafts.get(Peer(ip_block=IPBlock(cidr))), merged)
                self._find(
                    FindingKind.PUBLIC_EXPOSURE,
                    _peer_text(group[0], "dst"),
                    f"{protocol} {port} is open to any address: {len(sources)} "
                    f"distinct external sources were seen (threshold {threshold})",
                    *group,
                )
            else:
                for edge in group:
                    drafts.setdefault(Peer(ip_block=IPBlock(edge.src.selector)), _RuleDraft()).add(
                        edge, edge.dst.pods, ()
                    )

    def _default_deny(self) -> NetworkPolicy:
        return NetworkPolicy(
            name=DEFAULT_DENY,
            namespace=self.namespace,
            pod_selector=LabelSelector(),
            policy_types=("Ingress", "Egress"),
            labels=MANAGED_BY,
            comment=(
                "Deny all ingress and egress of every pod in the namespace; the allow policies",
                "below open exactly the traffic that was observed. Apply it last.",
            ),
        )

    def _allow_dns(self) -> NetworkPolicy:
        dns = self.settings.dns
        peer = Peer(
            namespace_selector=LabelSelector.of({NAMESPACE_NAME_LABEL: dns.namespace}),
            pod_selector=LabelSelector(dns.pod_labels),
        )
        protocols: tuple[Protocol, ...] = ("UDP", "TCP")
        ports = tuple(PortSpec(protocol=p, port=n) for n in dns.ports for p in protocols)
        evidence = None
        draft = self.dns
        proxy = self.format.api == "cilium" and self._by_name()
        if draft.first is not None and draft.last is not None:
            evidence = Evidence(
                draft.flows,
                draft.first,
                draft.last,
                tuple(sorted(draft.pods)),
                tuple(sorted(draft.peer_pods)),
            )
        return NetworkPolicy(
            name=ALLOW_DNS,
            namespace=self.namespace,
            pod_selector=LabelSelector(),
            policy_types=("Egress",),
            egress=(
                Rule(
                    peers=(peer,),
                    ports=tuple(sorted(ports, key=lambda p: (p.port or 0, p.protocol))),
                    evidence=evidence,
                    dns_proxy=proxy,
                ),
            ),
            labels=MANAGED_BY,
            comment=(
                "Every pod may resolve names through the cluster DNS, over UDP and TCP.",
                *(("Through the DNS proxy, so the agent learns the addresses behind the toFQDNs names.",) if proxy
                  else ()),
            ),
        )

    def _http_ports(
        self, identity: Identity, ingress: dict[Peer, _RuleDraft], egress: dict[Peer, _RuleDraft]
    ) -> dict[str, set[tuple[str, int]]]:
        """The ports of a workload that take HTTP rules, per direction (only with `--l7`, for Cilium).

        A port qualifies when HTTP requests were seen on it and every peer of the port made them, each
        within the path limit: an L4 rule on the same port would let its peer make any request (the
        agent merges it as allow-all), and a peer seen without requests may speak something else.
        At most `MAX_L7_PORTS` ports per workload, ingress first, lowest first; the rest stay L4.
        """
        chosen: dict[str, set[tuple[str, int]]] = {"Ingress": set(), "Egress": set()}
        if not (self.format.l7 and self.format.api == "cilium"):
            return chosen
        subject = f"{self.namespace}/{', '.join(identity.workloads)}"
        limit = self.format.l7_max_paths
        for direction, drafts in (("Ingress", ingress), ("Egress", egress)):
            by_port: dict[tuple[str, int], list[_RuleDraft]] = defaultdict(list)
            for draft in drafts.values():
                for port in draft.ports:
                    by_port[port].append(draft)
            for port, group in sorted(by_port.items()):
                if port[0] != "TCP" or not any(port in draft.requests for draft in group):
                    continue
                where = f"{direction.lower()} TCP {port[1]}"
                plain = sum(1 for draft in group if port not in draft.requests or port in draft.plain)
                if plain:
                    self._find(FindingKind.HTTP_L4, subject,
                               f"{where} stays an L4 rule: {plain} of its {len(group)} peers made no HTTP request "
                               "on it (an HTTP rule must cover every peer of a port)")
                elif any(draft.http_entries(port, limit) is None for draft in group):
                    most = max(len(draft.requests[port]) for draft in group)
                    self._find(FindingKind.HTTP_L4, subject,
                               f"{where} stays an L4 rule: a peer made more distinct requests than --l7-max-paths "
                               f"{limit} allows, even with identifiers generalised ({most:,} distinct requests)")
                elif len(chosen["Ingress"]) + len(chosen["Egress"]) >= MAX_L7_PORTS:
                    self._find(FindingKind.HTTP_L4, subject,
                               f"{where} stays an L4 rule: the agent takes HTTP rules on at most {MAX_L7_PORTS} "
                               "ports of one pod")
                else:
                    chosen[direction].add(port)
        return chosen

    def _workload_policy(
        self,
        identity: Identity,
        name: str,
        direction: str,
        drafts: dict[Peer, _RuleDraft],
        http_ports: set[tuple[str, int]] | None = None,
    ) -> NetworkPolicy:
        """One rule per peer on its plain ports, then one per HTTP port with that port's entries."""
        http_ports = http_ports or set()
        rules: list[Rule] = []
        for peer in sorted(drafts, key=_peer_sort_key):
            draft = drafts[peer]
            plain = draft.ports - http_ports
            if plain:
                rules.append(draft.rule(peer, plain))
            for port in sorted(draft.ports & http_ports):
                entries = draft.http_entries(port, self.format.l7_max_paths)
                assert entries is not None  # chosen by _http_ports
                rules.append(draft.rule(peer, {port}, entries))
        comment = [f"{direction} of {', '.join(identity.workloads)}, selected by {identity.method} labels."]
        if identity.method == "intersection":
            comment.append("No stable identity label was found: the selector is the labels all its pods share.")
        if identity.merged:
            comment.append("No stable label tells these workloads apart: the rules cover all of them. Label the pods.")
        return NetworkPolicy(
            name=name,
            namespace=self.namespace,
            pod_selector=identity.selector,
            policy_types=(direction,),  # type: ignore[arg-type]
            ingress=tuple(rules) if direction == "Ingress" else (),
            egress=tuple(rules) if direction == "Egress" else (),
            labels=MANAGED_BY,
            comment=tuple(comment),
        )


def _merge_port(existing: _RuleDraft | None, new: _RuleDraft) -> _RuleDraft:
    if existing is None:
        return new
    return _RuleDraft(
        existing.ports | new.ports,
        existing.flows + new.flows,
        min(filter(None, (existing.first, new.first))),
        max(filter(None, (existing.last, new.last))),
        existing.pods | new.pods,
        existing.peer_pods | new.peer_pods,
        existing.names | new.names,
        existing.notes | new.notes,
        existing.verdicts + new.verdicts,
        existing.addresses | new.addresses,
        {port: existing.by_port.get(port, _Seen()).merged(new.by_port.get(port, _Seen()))
         for port in existing.by_port.keys() | new.by_port.keys()},
        {port: existing.requests.get(port, Counter()) + new.requests.get(port, Counter())
         for port in existing.requests.keys() | new.requests.keys()},
        existing.plain | new.plain,
    )


def dns_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names a rule may allow by: lower-case, without the trailing dot, and only those both
    Cilium and Calico accept (letters, digits, `-`, `_` and dots, at most 255 characters)."""
    found = {name.lower().rstrip(".") for name in names}
    return tuple(sorted(n for n in found if len(n) <= 255 and _DNS_NAME.fullmatch(n)))


def _address_order(selector: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(selector, strict=False)
    return (network.version, int(network.network_address), network.prefixlen)


def _peer_sort_key(peer: Peer) -> tuple[Any, ...]:
    if peer.fqdn is not None:
        return (3, peer.fqdn.text, "", 0, 0, 0)
    if peer.entity is not None:
        return (4, peer.entity, "", 0, 0, 0)
    if peer.ip_block is not None:
        network = ipaddress.ip_network(peer.ip_block.cidr, strict=False)
        return (2, "", "", network.version, int(network.network_address), network.prefixlen)
    namespace = peer.namespace_selector.canonical() if peer.namespace_selector else ""
    pods = peer.pod_selector.canonical() if peer.pod_selector else ""
    return (0 if not namespace else 1, namespace, pods, 0, 0, 0)


_EVERY_POD = Peer(namespace_selector=LabelSelector())
"""Every pod of every namespace (`namespaceSelector: {}`), and no address outside the cluster."""

_CLUSTER_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10",
    )
)


def _is_private(selector: str) -> bool:
    """Inside the ranges clusters use for pods, services and nodes (RFC 1918, CGNAT, link-local, ULA)."""
    try:
        network = ipaddress.ip_network(selector, strict=False)
    except ValueError:
        return False
    return any(network.version == r.version and network.subnet_of(r) for r in _CLUSTER_RANGES)  # type: ignore[arg-type]


def _port_text(edge: Edge) -> str:
    return f"{edge.protocol} {edge.port}" if edge.port is not None else edge.protocol


def _peer_text(edge: Edge, side: Side) -> str:
    if edge.end(side).kind == "pod":
        return f"{edge.end(side).namespace}/{','.join(edge.end(side).workloads) or edge.end(side).selector}"
    return f"{edge.end(side).kind} {edge.end(side).selector}".strip()


def _direction(side: str) -> str:
    return "to" if side == "dst" else "from"


def as_utc(value: datetime) -> str:
    """ISO 8601 in UTC to the second, for evidence."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
