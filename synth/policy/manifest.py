"""One NetworkPolicy object ↔ the model: the strict converter and the normalised manifest.

`policy_from_object` validates a parsed manifest as strictly as the API server (plus unknown
fields, which would otherwise silently widen a rule: a `form:` typo makes an ingress rule allow
every peer) and applies the upstream defaults: `policyTypes` from the rules when absent, protocol
TCP, `podSelector` `{}`. `policy_to_manifest` / `normalised_yaml` give the normalised form text
diffs compare, the same whether a policy came from a file, a cluster or synth.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from synth.base.errors import PolicyError
from synth.core.model import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    Peer,
    PolicyType,
    PortSpec,
    Requirement,
    Rule,
)
from synth.policy.fields import (
    PROTOCOLS,
    Where,
    check_keys,
    check_label_key,
    check_label_value,
    describe,
    is_port_name,
    list_field,
    mapping_field,
    string_map,
)

__all__ = [
    "API_VERSION",
    "ip_block",
    "label_selector",
    "normalised_yaml",
    "one_peer_and_protocol",
    "policy_from_object",
    "policy_to_manifest",
]

API_VERSION = "networking.k8s.io/v1"

# --- converting one object -------------------------------------------------------------------------

_OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")
_POLICY_TYPES: tuple[PolicyType, ...] = ("Ingress", "Egress")
# Written by `kubectl apply`, not part of the policy: dropped so text diffs show only real change.
_BOOKKEEPING = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


def policy_from_object(obj: Mapping[str, Any], origin: str, default_namespace: str = "default") -> NetworkPolicy:
    """Validate one parsed NetworkPolicy manifest and convert it with upstream defaults.

    Raises `PolicyError` naming `origin`, the policy and the field path of the first problem.
    """
    meta = obj.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise PolicyError(f"{origin}: metadata: must be a mapping")
    name = meta.get("name")
    namespace = meta.get("namespace") or default_namespace
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{origin}: metadata.name: required")
    if not isinstance(namespace, str):
        raise PolicyError(f"{origin} ({name}): metadata.namespace: must be a string")
    w = Where(origin, f"{namespace}/{name}")
    spec = mapping_field(obj.get("spec"), "spec", w)
    check_keys(spec, ("podSelector", "policyTypes", "ingress", "egress"), "spec", w)
    egress = _rules(spec.get("egress"), "spec.egress", "to", w)
    return NetworkPolicy(
        name=name,
        namespace=namespace,
        pod_selector=label_selector(spec.get("podSelector"), "spec.podSelector", w),
        policy_types=_policy_types(spec.get("policyTypes"), bool(egress), w),
        ingress=_rules(spec.get("ingress"), "spec.ingress", "from", w),
        egress=egress,
        labels=string_map(meta.get("labels"), "metadata.labels", w),
        annotations=tuple(
            item
            for item in string_map(meta.get("annotations"), "metadata.annotations", w)
            if item[0] not in _BOOKKEEPING
        ),
        origin=origin,
    )


def _policy_types(value: object, has_egress: bool, w: Where) -> tuple[PolicyType, ...]:
    given = list_field(value, "spec.policyTypes", w)
    if not given:
        return ("Ingress", "Egress") if has_egress else ("Ingress",)
    for i, item in enumerate(given):
        if item not in _POLICY_TYPES:
            w.fail(f"spec.policyTypes[{i}]", f"unknown policy type {item!r} (use Ingress or Egress)")
        if given.index(item) != i:
            w.fail(f"spec.policyTypes[{i}]", f"duplicate policy type {item!r}")
    return tuple(t for t in _POLICY_TYPES if t in given)


def label_selector(value: object, path: str, w: Where) -> LabelSelector:
    """A `metav1.LabelSelector` (valid keys and values, known operators), expressions sorted."""
    body = mapping_field(value, path, w)
    check_keys(body, ("matchLabels", "matchExpressions"), path, w)
    labels = mapping_field(body.get("matchLabels"), f"{path}.matchLabels", w)
    for key, label in labels.items():
        check_label_key(key, f"{path}.matchLabels", w)
        check_label_value(label, f"{path}.matchLabels.{key}", w)
    requirements = [
        _requirement(item, f"{path}.matchExpressions[{i}]", w)
        for i, item in enumerate(list_field(body.get("matchExpressions"), f"{path}.matchExpressions", w))
    ]
    return LabelSelector(
        match_labels=tuple(sorted(labels.items())),
        match_expressions=tuple(sorted(requirements, key=lambda r: (r.key, r.operator, r.values))),
    )


def _requirement(value: object, path: str, w: Where) -> Requirement:
    body = mapping_field(value, path, w)
    check_keys(body, ("key", "operator", "values"), path, w)
    key = body.get("key")
    check_label_key(key, f"{path}.key", w)
    operator = body.get("operator")
    if operator not in _OPERATORS:
        w.fail(f"{path}.operator", f"unknown operator {operator!r} (use In, NotIn, Exists or DoesNotExist)")
    values = list_field(body.get("values"), f"{path}.values", w)
    for i, item in enumerate(values):
        check_label_value(item, f"{path}.values[{i}]", w)
    if operator in ("In", "NotIn") and not values:
        w.fail(f"{path}.values", f"must be non-empty when operator is {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        w.fail(f"{path}.values", f"must be empty when operator is {operator}")
    return Requirement(key=str(key), operator=operator, values=tuple(sorted(set(values))))


def _rules(value: object, path: str, peer_field: str, w: Where) -> tuple[Rule, ...]:
    rules = []
    for i, item in enumerate(list_field(value, path, w)):
        rule_path = f"{path}[{i}]"
        body = mapping_field(item, rule_path, w)
        check_keys(body, (peer_field, "ports"), rule_path, w)
        peers_path, ports_path = f"{rule_path}.{peer_field}", f"{rule_path}.ports"
        peers = list_field(body.get(peer_field), peers_path, w)
        ports = list_field(body.get("ports"), ports_path, w)
        rules.append(
            Rule(
                peers=tuple(_peer(p, f"{peers_path}[{j}]", w) for j, p in enumerate(peers)),
                ports=tuple(_port(p, f"{ports_path}[{j}]", w) for j, p in enumerate(ports)),
            )
        )
    return tuple(rules)


def _peer(value: object, path: str, w: Where) -> Peer:
    body = mapping_field(value, path, w)
    check_keys(body, ("podSelector", "namespaceSelector", "ipBlock"), path, w)
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if body.get(k) is not None]
    if not present:
        w.fail(path, "a peer needs podSelector, namespaceSelector or ipBlock")
    if "ipBlock" in present and len(present) > 1:
        w.fail(path, "ipBlock cannot be combined with podSelector or namespaceSelector in one peer")
    if "ipBlock" in present:
        return Peer(ip_block=ip_block(body["ipBlock"], f"{path}.ipBlock", w))
    pods, spaces = body.get("podSelector"), body.get("namespaceSelector")
    return Peer(
        pod_selector=None if pods is None else label_selector(pods, f"{path}.podSelector", w),
        namespace_selector=None if spaces is None else label_selector(spaces, f"{path}.namespaceSelector", w),
    )


def ip_block(value: object, path: str, w: Where) -> IPBlock:
    """An `ipBlock`: a CIDR and `except` ranges strictly inside it, of the same family."""
    body = mapping_field(value, path, w)
    check_keys(body, ("cidr", "except"), path, w)
    cidr = body.get("cidr")
    network = _network(cidr, f"{path}.cidr", w)
    excepts = list_field(body.get("except"), f"{path}.except", w)
    for i, item in enumerate(excepts):
        item_path = f"{path}.except[{i}]"
        hole = _network(item, item_path, w)
        if hole.version != network.version:
            w.fail(item_path, f"{item} is IPv{hole.version} but cidr {cidr} is IPv{network.version}")
        if not hole.subnet_of(network):  # type: ignore[arg-type]  # same family checked above
            w.fail(item_path, f"{item} is not inside {cidr}")
        if hole.prefixlen == network.prefixlen:
            w.fail(item_path, f"{item} must be a strict subset of {cidr}, not all of it")
    return IPBlock(cidr=str(cidr), except_=tuple(str(e) for e in excepts))


def _network(value: object, path: str, w: Where) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if value is None:
        w.fail(path, "required")
    if not isinstance(value, str) or "/" not in value:
        w.fail(path, f"{value!r} is not a CIDR (address/prefix)")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        w.fail(path, f"{value!r} is not a valid CIDR")


def _port(value: object, path: str, w: Where) -> PortSpec:
    body = mapping_field(value, path, w)
    check_keys(body, ("protocol", "port", "endPort"), path, w)
    protocol = body.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        w.fail(f"{path}.protocol", f"unknown protocol {protocol!r} (use TCP, UDP or SCTP)")
    port = body.get("port")
    if isinstance(port, bool) or not isinstance(port, int | str | None):
        w.fail(f"{path}.port", f"must be a number or a port name, got {describe(port)}")
    if isinstance(port, int) and not 1 <= port <= 65535:
        w.fail(f"{path}.port", f"{port} is not between 1 and 65535")
    if isinstance(port, str) and not is_port_name(port):
        w.fail(f"{path}.port", f"{port!r} is not a valid port name (a number must not be quoted)")
    end_port = body.get("endPort")
    if end_port is not None:
        if isinstance(end_port, bool) or not isinstance(end_port, int):
            w.fail(f"{path}.endPort", f"must be a number, got {describe(end_port)}")
        if not isinstance(port, int):
            named = f", not the named port {port!r}" if port is not None else ""
            w.fail(f"{path}.endPort", f"needs a numeric port{named}")
        if end_port < port:
            w.fail(f"{path}.endPort", f"{end_port} is less than port {port}")
        if end_port > 65535:
            w.fail(f"{path}.endPort", f"{end_port} is not between 1 and 65535")
    return PortSpec(protocol=protocol, port=port, end_port=end_port)


# --- normalised manifest ---------------------------------------------------------------------------


def policy_to_manifest(policy: NetworkPolicy) -> dict[str, Any]:
    """The normalised manifest: fixed key order, explicit `policyTypes` and protocols, sorted selectors.

    Empty rule lists and empty `from`/`to`/`ports` are omitted (they mean the same as absent).
    Rules, peers and ports keep their order. Evidence and comments are not part of the manifest.
    """
    metadata: dict[str, Any] = {"name": policy.name, "namespace": policy.namespace}
    if policy.labels:
        metadata["labels"] = dict(sorted(policy.labels))
    if policy.annotations:
        metadata["annotations"] = dict(sorted(policy.annotations))
    spec: dict[str, Any] = {
        "podSelector": _selector_manifest(policy.pod_selector),
        "policyTypes": [t for t in _POLICY_TYPES if t in policy.policy_types],
    }
    if policy.api == "calico":
        spec |= {"tier": policy.tier or "default"} | ({} if policy.order is None else {"order": policy.order})
    ingress, egress = policy.ingress, policy.egress
    if policy.api == "calico":
        ingress, egress = one_peer_and_protocol(ingress), one_peer_and_protocol(egress)
    if ingress:
        spec["ingress"] = [_rule_manifest(r, "from") for r in ingress]
    if egress:
        spec["egress"] = [_rule_manifest(r, "to") for r in egress]
    api_version, kind = _NATIVE_KINDS[(policy.api, policy.staged)]
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


# Cilium and Calico policies are compared in the model's normalised form (their L3/L4 meaning), under their own kind.
_NATIVE_KINDS = {
    ("kubernetes", False): (API_VERSION, "NetworkPolicy"),
    ("cilium", False): ("cilium.io/v2", "CiliumNetworkPolicy"),
    ("calico", False): ("projectcalico.org/v3", "NetworkPolicy"),
    ("calico", True): ("projectcalico.org/v3", "StagedNetworkPolicy"),
}


def one_peer_and_protocol(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The rules as Calico writes them: one per peer and protocol (a Calico rule has one protocol, and
    IPv4 and IPv6 networks never share one), in order; the same meaning."""
    out = []
    for rule in rules:
        protocols = sorted({p.protocol for p in rule.ports})
        for peer in rule.peers or (None,):
            peers = () if peer is None else (peer,)
            if not protocols:
                out.append(replace(rule, peers=peers))
            for protocol in protocols:
                ports = tuple(p for p in rule.ports if p.protocol == protocol)
                out.append(replace(rule, peers=peers, ports=ports))
    return tuple(out)


def _selector_manifest(selector: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(sorted(selector.match_labels))
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator} | ({"values": sorted(set(r.values))} if r.values else {})
            for r in sorted(selector.match_expressions, key=lambda r: (r.key, r.operator, sorted(r.values)))
        ]
    return out


def _rule_manifest(rule: Rule, peer_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.peers:
        out[peer_field] = [_peer_manifest(p) for p in rule.peers]
    if rule.ports:
        out["ports"] = [_port_manifest(p) for p in rule.ports]
    if rule.dns_proxy:
        out["dnsProxy"] = True
    return out


def _peer_manifest(peer: Peer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.entity is not None:
        out["entity"] = peer.entity
    if peer.fqdn is not None:
        out["dnsName" if not peer.fqdn.pattern else "dnsPattern"] = peer.fqdn.text
    if peer.ip_block is not None:
        out["ipBlock"] = {"cidr": peer.ip_block.cidr}
        if peer.ip_block.except_:
            out["ipBlock"]["except"] = list(peer.ip_block.except_)
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = _selector_manifest(peer.namespace_selector)
    if peer.pod_selector is not None:
        out["podSelector"] = _selector_manifest(peer.pod_selector)
    return out


def _port_manifest(port: PortSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": port.protocol}
    if port.port is not None:
        out["port"] = port.port
    if port.end_port is not None:
        out["endPort"] = port.end_port
    return out


def normalised_yaml(policy: NetworkPolicy) -> str:
    """The normalised manifest as YAML (fixed key order, block style): the text form diffs compare."""
    text: str = yaml.dump(
        policy_to_manifest(policy),
        Dumper=yaml.SafeDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return text
