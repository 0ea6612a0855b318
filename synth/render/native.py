"""Cilium and Calico views of a policy: every decision their templates need, made here.

The model speaks Kubernetes (pod and namespace selectors, ipBlocks) plus the native peers (entities,
DNS names). A CiliumNetworkPolicy names another namespace inside the endpoint selector
(`k8s:io.kubernetes.pod.namespace`), takes one peer kind per rule (the agent rejects mixes the
CRD accepts) and ports as strings; a Calico rule takes one protocol, a selector expression and
`projectcalico.org/name` for namespaces. The templates only loop over what these functions return.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from synth.base.config import NAMESPACE_NAME_LABEL
from synth.core.model import HTTPRule, IPBlock, LabelSelector, Peer, PortSpec, Requirement, Rule
from synth.policy import calico, cilium
from synth.policy.manifest import one_peer_and_protocol

__all__ = [
    "CALICO_NAMESPACE_LABEL",
    "CILIUM_NAMESPACE_KEY",
    "CILIUM_NAMESPACE_LABELS",
    "CalicoRule",
    "CiliumRule",
    "calico_rules",
    "calico_selector",
    "cilium_endpoint_selector",
    "cilium_rules",
    "number_text",
]

CILIUM_NAMESPACE_KEY = "k8s:" + cilium.NAMESPACE_KEY
CILIUM_NAMESPACE_LABELS = "k8s:" + cilium.NAMESPACE_LABELS_PREFIX
CALICO_NAMESPACE_LABEL = calico.NAMESPACE_LABEL
_CILIUM_PORTS_PER_ENTRY = 40  # the CRD's limit on ports in one toPorts entry


@dataclass(frozen=True, slots=True)
class CiliumRule:
    """One CNP rule: a single peer field and its values, then `toPorts` entries."""

    field: str  # toEndpoints, toCIDR, toCIDRSet, toEntities, toFQDNs (from* on ingress); "" for any peer
    selectors: tuple[LabelSelector, ...]
    values: tuple[str, ...]  # toCIDR and toEntities
    cidr_sets: tuple[IPBlock, ...]
    fqdns: tuple[tuple[str, str], ...]  # (matchName | matchPattern, text)
    port_groups: tuple[tuple[tuple[str, str, int | None], ...], ...]  # (port, protocol, endPort) per entry
    dns_proxy: bool
    evidence: Rule
    http: tuple[HTTPRule, ...] = ()  # `rules.http` of every toPorts entry


def cilium_endpoint_selector(peer: Peer) -> LabelSelector:
    """The CNP endpoint selector of a pod peer: its pod labels plus the namespace as Cilium labels it
    (none: the policy's own namespace, as the agent adds it)."""
    pods = peer.pod_selector or LabelSelector()
    labels = list(pods.match_labels)
    expressions = list(pods.match_expressions)
    spaces = peer.namespace_selector
    if spaces is not None and spaces.is_empty:
        expressions.append(Requirement(CILIUM_NAMESPACE_KEY, "Exists"))
    elif spaces is not None:
        labels += [(_cilium_namespace_key(k), v) for k, v in spaces.match_labels]
        expressions += [
            Requirement(_cilium_namespace_key(r.key), r.operator, r.values) for r in spaces.match_expressions
        ]
    return LabelSelector(tuple(sorted(labels)), tuple(sorted(expressions, key=lambda r: (r.key, r.operator))))


def _cilium_namespace_key(key: str) -> str:
    return CILIUM_NAMESPACE_KEY if key == NAMESPACE_NAME_LABEL else CILIUM_NAMESPACE_LABELS + key


def _peer_field(peer: Peer) -> str:
    if peer.fqdn is not None:
        return "FQDNs"
    if peer.entity is not None:
        return "Entities"
    if peer.ip_block is not None:
        return "CIDRSet" if peer.ip_block.except_ else "CIDR"
    return "Endpoints"


def cilium_rules(rules: Iterable[Rule], direction: str) -> tuple[CiliumRule, ...]:
    """The CNP rules of one direction: a model rule with peers of several kinds becomes one rule per kind."""
    prefix = "to" if direction == "egress" else "from"
    out = []
    for rule in rules:
        groups: dict[str, list[Peer]] = {}
        for peer in rule.peers:
            groups.setdefault(_peer_field(peer), []).append(peer)
        ports = _cilium_port_groups(rule.ports)
        if not groups:
            field, values = ("", ()) if ports else (f"{prefix}Entities", ("all",))
            out.append(CiliumRule(field, (), values, (), (), ports, rule.dns_proxy, rule, rule.http))
        for kind, peers in sorted(groups.items()):
            out.append(
                CiliumRule(
                    field=prefix + kind,
                    selectors=tuple(cilium_endpoint_selector(p) for p in peers if kind == "Endpoints"),
                    values=tuple(
                        p.ip_block.cidr if p.ip_block is not None else p.entity or ""
                        for p in peers
                        if kind in ("CIDR", "Entities")
                    ),
                    cidr_sets=tuple(p.ip_block for p in peers if kind == "CIDRSet" and p.ip_block is not None),
                    fqdns=tuple(
                        ("matchPattern" if p.fqdn.pattern else "matchName", p.fqdn.text)
                        for p in peers
                        if p.fqdn is not None
                    ),
                    port_groups=ports,
                    dns_proxy=rule.dns_proxy,
                    evidence=rule,
                    http=rule.http,
                )
            )
    return tuple(out)


def _cilium_port_groups(ports: tuple[PortSpec, ...]) -> tuple[tuple[tuple[str, str, int | None], ...], ...]:
    entries = tuple(
        ("0" if p.port is None else str(p.port), p.protocol, p.end_port) for p in ports
    )
    size = _CILIUM_PORTS_PER_ENTRY
    return tuple(entries[i : i + size] for i in range(0, len(entries), size))


@dataclass(frozen=True, slots=True)
class CalicoRule:
    """One Calico rule: `action: Allow`, one protocol, the peer in `source` (ingress) or `destination`."""

    protocol: str | None
    selector: str | None
    namespace_selector: str | None
    nets: tuple[str, ...]
    not_nets: tuple[str, ...]
    domains: tuple[str, ...]
    ports: tuple[str | int, ...]
    evidence: Rule

    @property
    def has_peer(self) -> bool:
        """Whether the rule names its peer (else it allows any)."""
        fields = (self.selector, self.namespace_selector)
        return any(f is not None for f in fields) or bool(self.nets or self.domains)


def calico_selector(selector: LabelSelector, namespaces: bool = False) -> str:
    """A Calico selector expression; `namespaces` names namespaces by `projectcalico.org/name`.

    Label keys and values are valid Kubernetes labels (validated when read, chosen so when
    generated), so they never hold a quote and need no escaping inside `'...'`.
    """
    def key_of(key: str) -> str:
        return CALICO_NAMESPACE_LABEL if namespaces and key == NAMESPACE_NAME_LABEL else key

    parts = [f"{key_of(k)} == '{v}'" for k, v in selector.match_labels]
    for r in selector.match_expressions:
        values = ", ".join(f"'{v}'" for v in r.values)
        parts.append({
            "In": f"{key_of(r.key)} in {{{values}}}",
            "NotIn": f"{key_of(r.key)} not in {{{values}}}",
            "Exists": f"has({key_of(r.key)})",
            "DoesNotExist": f"!has({key_of(r.key)})",
        }[r.operator])
    return " && ".join(parts) or "all()"


def calico_rules(rules: tuple[Rule, ...]) -> tuple[CalicoRule, ...]:
    """The Calico rules of one direction: one per peer and protocol (`one_peer_and_protocol`)."""
    out = []
    for rule in one_peer_and_protocol(rules):
        protocol = rule.ports[0].protocol if rule.ports else None
        ports = tuple(_calico_port(p) for p in rule.ports if p.port is not None)
        out.append(_calico_rule(rule.peers[0] if rule.peers else None, protocol, ports, rule))
    return tuple(out)


def _calico_rule(peer: Peer | None, protocol: str | None, ports: tuple[str | int, ...], rule: Rule) -> CalicoRule:
    if peer is None:
        return CalicoRule(protocol, None, None, (), (), (), ports, rule)
    if peer.fqdn is not None:
        return CalicoRule(protocol, None, None, (), (), (peer.fqdn.text,), ports, rule)
    if peer.ip_block is not None:
        return CalicoRule(protocol, None, None, (peer.ip_block.cidr,), peer.ip_block.except_, (), ports, rule)
    spaces = peer.namespace_selector
    return CalicoRule(
        protocol,
        None if peer.pod_selector is None else calico_selector(peer.pod_selector),
        None if spaces is None else calico_selector(spaces, namespaces=True),
        (),
        (),
        (),
        ports,
        rule,
    )


def _calico_port(port: PortSpec) -> str | int:
    if isinstance(port.port, int) and port.end_port is not None:
        return f"{port.port}:{port.end_port}"
    return port.port if port.port is not None else 0


def number_text(value: float) -> str:
    """`100` for 100.0, `12.5` as is, `0.00001` for 1e-05: a Calico `order`, in positional notation
    (YAML 1.1 reads `1e-05` as a string)."""
    return str(int(value)) if value == int(value) else format(Decimal(repr(value)), "f")
