"""Compiled matchers for the policy engine, after policy-assistant's `pkg/matcher`.

A policy compiles into a `Target` (its namespace, a compiled pod selector and, per direction it
isolates, a tuple of `CompiledRule`). A rule holds peer matchers and port matchers; each matcher
answers with a three-valued `Match`: True, False or `Unknown(reason)` when a fact it needs (pod
labels, an IP, a destination's container ports) is missing. Unknowns combine by Kleene logic, so
a definite answer is given whenever the known facts suffice.

Peers compile by this table (an absent selector is `-`, the policy's namespace is `P`):

| podSelector | namespaceSelector | matches                                   |
|-------------|-------------------|-------------------------------------------|
| `{}`        | -                 | every pod in P                            |
| S           | -                 | pods matching S in P                      |
| -           | `{}`              | every pod in every namespace              |
| -           | N                 | every pod in namespaces matching N        |
| `{}`        | `{}`              | every pod in every namespace              |
| S           | `{}`              | pods matching S in every namespace        |
| `{}`        | N                 | every pod in namespaces matching N        |
| S           | N                 | pods matching S in namespaces matching N  |
| ipBlock     |                   | any end (pod or not) whose IP is in cidr and in no except |

Cilium and Calico add their own peers, compiled by the policy's API: a Cilium CIDR matches only ends
without a Cilium identity (the world: never pods, nodes or the API server); an entity matches ends
of its kind (`kube-apiserver`, `host`, `remote-node`, `world`, `cluster`, `all`, ...); a DNS name
(`toFQDNs`, Calico `domains`) matches a world end when one of the names seen for its address
matches, in the API's wildcard dialect.

Selectors never match non-pod ends (nodes, world). A pod and a namespace selector in one peer are
ANDed; two peers are ORed (`any_of`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from synth.base.config import VOLATILE_LABELS, VOLATILE_PREFIXES
from synth.core.dnsnames import fqdn_pattern
from synth.core.model import IPBlock, LabelSelector, Peer, PolicyAPI, PortSpec, Rule

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFINED_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})

LabelsKey = tuple[tuple[str, str], ...]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Unknown:
    """A match that cannot be decided; `reason` names the missing fact."""

    reason: str


Match = bool | Unknown


def all_of(matches: Iterable[Match]) -> Match:
    """Kleene AND: False wins, then the first Unknown, else True."""
    unknown: Unknown | None = None
    for m in matches:
        if m is False:
            return False
        if isinstance(m, Unknown) and unknown is None:
            unknown = m
    return True if unknown is None else unknown


def any_of(matches: Iterable[Match]) -> Match:
    """Kleene OR: True wins, then the first Unknown, else False."""
    unknown: Unknown | None = None
    for m in matches:
        if m is True:
            return True
        if isinstance(m, Unknown) and unknown is None:
            unknown = m
    return False if unknown is None else unknown


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a connection, as far as it is known.

    `kind` is `pod`, `host` (the local node of the other end), `remote-node`, `world`,
    `kube-apiserver`, `unknown`, ... Only pods are matched by selectors and only pods are isolated.
    `labels` None means the pod's labels are unknown; `namespace_labels` None with a known
    namespace is taken as `{kubernetes.io/metadata.name: namespace}`. `named_ports` maps container
    port names to (number, protocol) for named-port rules on this end as destination (None: the
    container ports are unknown; a name not in it is declared by no container); `unresolved_ports`
    maps the names that could not be resolved (workloads that disagree) to why.
    `name` is optional and only used for reasons and for recognising a pod talking to itself.
    """

    kind: str
    namespace: str | None = None
    labels: Mapping[str, str] | None = None
    namespace_labels: Mapping[str, str] | None = None
    ip: str | None = None
    named_ports: Mapping[str, tuple[int, str]] | None = None
    name: str | None = None
    unresolved_ports: Mapping[str, str] | None = None
    names: tuple[str, ...] = ()  # DNS names seen for the address of a world end

    @property
    def is_pod(self) -> bool:
        """Whether this end is a pod (the only kind policies select and isolate)."""
        return self.kind == "pod"

    def describe(self) -> str:
        """A short human name: `pod x/a`, `pod x/{pod=a}`, `world 1.2.3.4`.

        Run and rollout labels (job-name, pod-template-hash, versions) are left out: every run of a
        CronJob would otherwise give the same reason once per job name.
        """
        if self.is_pod:
            labels = ",".join(
                f"{k}={v}" for k, v in sorted((self.labels or {}).items())
                if k not in VOLATILE_LABELS and not k.startswith(VOLATILE_PREFIXES)
            )
            who = self.name or "{" + labels + "}"
            return f"pod {self.namespace or '?'}/{who}"
        return f"{self.kind} {self.ip}" if self.ip else self.kind


@dataclass(frozen=True, slots=True)
class Traffic:
    """A connection request: `protocol` is TCP/UDP/SCTP (others are undefined), `port` the dst port."""

    src: Endpoint
    dst: Endpoint
    protocol: str
    port: int | None


class SelectorCache:
    """Interns selectors and caches their verdict per label set (verify asks the same questions often)."""

    def __init__(self) -> None:
        self._ids: dict[LabelSelector, int] = {}
        self._selectors: list[LabelSelector] = []
        self._results: dict[tuple[int, LabelsKey], bool] = {}

    def intern(self, selector: LabelSelector) -> int:
        """The id of this selector, adding it on first sight."""
        found = self._ids.get(selector)
        if found is None:
            found = self._ids[selector] = len(self._selectors)
            self._selectors.append(selector)
        return found

    def matches(self, selector_id: int, labels: LabelsKey) -> bool:
        """Whether the interned selector matches these (sorted) labels."""
        key = (selector_id, labels)
        result = self._results.get(key)
        if result is None:
            result = self._results[key] = self._selectors[selector_id].matches(dict(labels))
        return result


def labels_key(labels: Mapping[str, str] | None) -> LabelsKey | None:
    """Sorted, hashable form of a label mapping (None stays None)."""
    return None if labels is None else tuple(sorted(labels.items()))


def namespace_labels_of(end: Endpoint) -> LabelsKey | None:
    """The namespace labels of an end, defaulting to the name label when only the name is known."""
    if end.namespace_labels is not None:
        return labels_key(end.namespace_labels)
    return None if end.namespace is None else ((NAMESPACE_NAME_LABEL, end.namespace),)


@dataclass(frozen=True, slots=True)
class PodPeer:
    """Pods by namespace (the policy's own `namespace`, or `namespaces` selector id, or all) and labels."""

    namespace: str | None
    namespaces: int | None
    pods: int | None
    text: str

    def match(self, end: Endpoint, cache: SelectorCache) -> Match:
        """Whether `end` is a pod this peer selects."""
        if not end.is_pod:
            return Unknown("whether the unknown end is a pod is unknown") if end.kind == "unknown" else False
        namespace_match: Match = True
        if self.namespace is not None:
            namespace_match = (
                Unknown("pod namespace unknown") if end.namespace is None else end.namespace == self.namespace
            )
        elif self.namespaces is not None:
            ns_labels = namespace_labels_of(end)
            namespace_match = (
                Unknown("pod namespace unknown") if ns_labels is None else cache.matches(self.namespaces, ns_labels)
            )
        if namespace_match is False or self.pods is None:
            return namespace_match
        pod_labels = labels_key(end.labels)
        pod_match: Match = (
            Unknown(f"labels of {end.describe()} unknown")
            if pod_labels is None
            else cache.matches(self.pods, pod_labels)
        )
        return all_of((namespace_match, pod_match))


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> IPAddress | None:
    """A parsed address, or None when the text is not an IP address (cached)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class IPPeer:
    """An ipBlock: `network` minus `holes`, matched against any end's IP (pods included)."""

    network: IPNetwork
    holes: tuple[IPNetwork, ...]
    text: str
    identities: bool = True  # False for Cilium: ends with an identity (pods, nodes, ...) never match

    def match(self, end: Endpoint, cache: SelectorCache) -> Match:
        """Whether the end's IP is inside the block."""
        del cache
        if not self.identities and end.kind not in ("world", "unknown"):
            return False
        if end.ip is None:
            return Unknown(f"IP of {end.describe()} unknown")
        address = parse_ip(end.ip)
        if address is None:
            return Unknown(f"{end.ip!r} is not an IP address")
        if address.version != self.network.version or address not in self.network:
            return False
        return not any(address in hole for hole in self.holes)


_ENTITY_KINDS: dict[str, frozenset[str]] = {
    "all": frozenset({"pod", "host", "remote-node", "kube-apiserver", "world", "ingress", "health", "unknown"}),
    "cluster": frozenset({"pod", "host", "remote-node", "kube-apiserver", "ingress", "health", "unknown"}),
    "world": frozenset({"world"}),
    "world-ipv4": frozenset({"world"}),
    "world-ipv6": frozenset({"world"}),
}


@dataclass(frozen=True, slots=True)
class EntityPeer:
    """A Cilium entity: the ends of its kinds (`host` is the local node, `remote-node` the others)."""

    kinds: frozenset[str]
    text: str

    def match(self, end: Endpoint, cache: SelectorCache) -> Match:
        """Whether the end is of one of the entity's kinds."""
        del cache
        if end.kind == "unknown" and "unknown" not in self.kinds:
            return Unknown("whether the unknown end is of this entity is unknown")
        return end.kind in self.kinds


@dataclass(frozen=True, slots=True)
class NamePeer:
    """A DNS name peer: a world end one of whose seen names matches `pattern`."""

    pattern: re.Pattern[str]
    text: str

    def match(self, end: Endpoint, cache: SelectorCache) -> Match:
        """Whether a name seen for the end's address matches (pods and nodes never do)."""
        del cache
        if end.kind == "unknown":
            return Unknown("whether the unknown end is outside the cluster is unknown")
        return end.kind == "world" and any(self.pattern.fullmatch(n.lower().rstrip(".")) for n in end.names)


PeerMatcher = PodPeer | IPPeer | EntityPeer | NamePeer


@dataclass(frozen=True, slots=True)
class PortMatcher:
    """One `ports` entry: a protocol with all ports, a numeric range, or a named port."""

    protocol: str
    port: int | str | None
    end_port: int | None

    def match(self, traffic: Traffic) -> Match:
        """Whether the connection's protocol and destination port are covered."""
        if traffic.protocol != self.protocol:
            return False
        if self.port is None:
            return True
        if traffic.port is None:
            return Unknown("destination port unknown")
        if isinstance(self.port, int):
            return self.port <= traffic.port <= (self.end_port or self.port)
        dst = traffic.dst
        if not dst.is_pod:
            return Unknown("whether the destination is a pod is unknown") if dst.kind == "unknown" else False
        why = (dst.unresolved_ports or {}).get(self.port)
        if why is not None:
            return Unknown(f"named port {self.port!r} of {dst.describe()} unresolved: {why}")
        if dst.named_ports is None:
            return Unknown(f"named port {self.port!r}: container ports of {dst.describe()} unknown")
        declared = dst.named_ports.get(self.port)
        return declared is not None and declared == (traffic.port, self.protocol)

    def describe(self) -> str:
        """`TCP/80`, `TCP/32000-32768`, `UDP/dns`, `SCTP/*`."""
        if self.port is None:
            return f"{self.protocol}/*"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule: (any peer, or all when none) AND (any port, or all when none); `ref` names it."""

    ref: str
    peers: tuple[PeerMatcher, ...]
    ports: tuple[PortMatcher, ...]

    def match(self, remote: Endpoint, traffic: Traffic, cache: SelectorCache) -> Match:
        """Whether this rule allows the connection, `remote` being the far end."""
        port_match = any_of(p.match(traffic) for p in self.ports) if self.ports else True
        if port_match is False:
            return False
        peer_match = any_of(p.match(remote, cache) for p in self.peers) if self.peers else True
        return all_of((port_match, peer_match))

    def describe(self, peer_word: str) -> str:
        """`from: <peer> | <peer>  ports: TCP/80, UDP/*` (sorted, for the explain table)."""
        peers = " | ".join(sorted(p.text for p in self.peers)) if self.peers else "any peer"
        ports = ", ".join(sorted(p.describe() for p in self.ports)) if self.ports else "any port"
        return f"{peer_word}: {peers}  ports: {ports}"


@dataclass(frozen=True, slots=True)
class Target:
    """One compiled policy: the pods it selects and its rules per direction it isolates (None: not)."""

    key: str
    namespace: str
    pod_selector: int
    selector_text: str
    ingress: tuple[CompiledRule, ...] | None
    egress: tuple[CompiledRule, ...] | None

    def selects(self, pod: Endpoint, cache: SelectorCache) -> Match:
        """Whether this policy's podSelector selects the pod (namespace already checked)."""
        if self.selector_text == "{}":
            return True
        labels = labels_key(pod.labels)
        return (
            Unknown(f"labels of {pod.describe()} unknown")
            if labels is None
            else cache.matches(self.pod_selector, labels)
        )


def _selector_text(selector: LabelSelector) -> str:
    return "{" + selector.canonical() + "}"


def compile_peer(peer: Peer, namespace: str, cache: SelectorCache, api: PolicyAPI = "kubernetes") -> PeerMatcher:
    """Compile one peer by the table in this module's docstring, in the semantics of `api`."""
    if peer.entity is not None:
        return EntityPeer(_ENTITY_KINDS.get(peer.entity, frozenset({peer.entity})), f"entity {peer.entity}")
    if peer.fqdn is not None:
        return NamePeer(fqdn_pattern(peer.fqdn, api), f"name {peer.fqdn.text}")
    if peer.ip_block is not None:
        block = _compile_ip_block(peer.ip_block)
        return IPPeer(block.network, block.holes, block.text, identities=False) if api == "cilium" else block
    pods = peer.pod_selector
    pod_id = None if pods is None or pods.is_empty else cache.intern(pods)
    pod_text = "all pods" if pod_id is None or pods is None else f"pods {_selector_text(pods)}"
    spaces = peer.namespace_selector
    if spaces is None:
        return PodPeer(namespace, None, pod_id, f"{pod_text} in namespace {namespace}")
    if spaces.is_empty:
        return PodPeer(None, None, pod_id, f"{pod_text} in all namespaces")
    return PodPeer(None, cache.intern(spaces), pod_id, f"{pod_text} in namespaces {_selector_text(spaces)}")


def _compile_ip_block(block: IPBlock) -> IPPeer:
    network = ipaddress.ip_network(block.cidr, strict=False)
    holes = tuple(ipaddress.ip_network(e, strict=False) for e in block.except_)
    text = f"ip {block.cidr}" + (f" except {', '.join(block.except_)}" if block.except_ else "")
    return IPPeer(network, holes, text)


def compile_rules(
    rules: tuple[Rule, ...], ref: str, namespace: str, cache: SelectorCache, api: PolicyAPI = "kubernetes"
) -> tuple[CompiledRule, ...]:
    """Compile a policy's ingress or egress list; `ref` is like `x/allow-a ingress`."""
    return tuple(
        CompiledRule(
            ref=f"{ref}[{i}]",
            peers=tuple(compile_peer(p, namespace, cache, api) for p in rule.peers),
            ports=tuple(_compile_port(p) for p in rule.ports),
        )
        for i, rule in enumerate(rules)
    )


def _compile_port(port: PortSpec) -> PortMatcher:
    return PortMatcher(port.protocol, port.port, port.end_port)


def selector_target_text(selector: LabelSelector) -> str:
    """How a policy's podSelector is shown: `{}` for all pods, else `{key=value,...}`."""
    return _selector_text(selector)
