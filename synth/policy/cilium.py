"""One CiliumNetworkPolicy object → the model, checked as the CRD and the agent check it.

The CRD (`cilium.io/v2`, v1.19) checks the shape: one of `endpointSelector`/`nodeSelector`, a rule
list, `port` a string of a number or a port name, the protocol and entity enums, one of
`matchName`/`matchPattern`, one kind of L7 rule. The agent adds what the CRD accepts but it rejects:
one peer kind per rule (`toEndpoints`, `toCIDR`, `toCIDRSet`, `toEntities`, `toFQDNs`, ...), no
`icmps` beside `toPorts`, DNS rules only on egress with an explicit port. Both are errors here.

The model keeps the L3/L4 meaning: a peer without a namespace key is in the policy's namespace
(the agent adds it), `k8s:io.kubernetes.pod.namespace` becomes the namespace name,
`io.cilium.k8s.namespace.labels.<key>` a namespace label; `port: "0"` is every port and protocol
`ANY` is TCP, UDP and SCTP; L7 rules (`rules.http`, `rules.dns`) allow their port at L4, and the
entries of `rules.http` (method and path; `host` and headers are not judged) are kept on a rule of
their own for verify to match requests against. An empty
rule (`ingress: [{}]`) only makes the direction default-deny. What synth cannot evaluate (deny
rules, services, CIDR groups, node selectors, `enableDefaultDeny: false`) is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from synth.base.config import NAMESPACE_NAME_LABEL
from synth.core.model import (
    FQDN,
    HTTPRule,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyType,
    PortSpec,
    Requirement,
    Rule,
)
from synth.policy.fields import Where, check_keys, list_field, mapping_field, string_map
from synth.policy.manifest import ip_block, label_selector

__all__ = [
    "API_VERSION",
    "ENTITIES",
    "KIND",
    "NAMESPACE_KEY",
    "NAMESPACE_LABELS_PREFIX",
    "policies_from_cnp",
]

API_VERSION = "cilium.io/v2"
KIND = "CiliumNetworkPolicy"
NAMESPACE_KEY = "io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
ENTITIES = (
    "all", "world", "cluster", "host", "init", "ingress", "unmanaged", "remote-node", "health", "none",
    "kube-apiserver",
)  # fmt: skip
"""The CRD's `toEntities`/`fromEntities` enum (`world-ipv4`/`world-ipv6` are agent-only: rejected at apply)."""

_RULE_KEYS = (
    "endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress", "egressDeny", "labels",
    "description", "enableDefaultDeny", "log",
)  # fmt: skip
_PEERS = ("Endpoints", "CIDR", "CIDRSet", "Entities", "Services", "Groups", "Nodes", "FQDNs", "Requires")
_UNSUPPORTED_PEERS = ("Services", "Groups", "Nodes")
_PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY", "VRRP", "IGMP")
_PORT = re.compile(r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
                   r"|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*")
_NAME = re.compile(r"[-a-zA-Z0-9_.]{1,255}")
_PATTERN = re.compile(r"[-a-zA-Z0-9_.*]{1,255}")
_L7_KINDS = ("http", "kafka", "dns", "l7proto")
_PORTS_PER_ENTRY = 40


def policies_from_cnp(obj: Mapping[str, Any], origin: str, default_namespace: str = "default") -> list[NetworkPolicy]:
    """The policies of one CNP: one for `spec`, one per `specs` entry (`name[i]`).

    Raises `PolicyError` naming `origin`, the policy and the field path of the first problem.
    """
    meta = mapping_field(obj.get("metadata"), "metadata", Where(origin, "?"))
    name, namespace = meta.get("name"), meta.get("namespace") or default_namespace
    w = Where(origin, f"{namespace}/{name}")
    if not isinstance(name, str) or not name:
        w.fail("metadata.name", "required")
    if not isinstance(namespace, str):
        w.fail("metadata.namespace", "must be a string")
    check_keys(obj, ("apiVersion", "kind", "metadata", "spec", "specs", "status"), "", w)
    specs = [("spec", obj["spec"])] if obj.get("spec") is not None else []
    specs += [(f"specs[{i}]", s) for i, s in enumerate(list_field(obj.get("specs"), "specs", w))]
    if not specs:
        w.fail("spec", "a CiliumNetworkPolicy needs spec or specs")
    labels = string_map(meta.get("labels"), "metadata.labels", w)
    several = len(specs) > 1
    return [
        _policy(body, path, f"{name}[{i}]" if several else name, namespace, labels, origin, w)
        for i, (path, body) in enumerate(specs)
    ]


def _policy(
    value: object, path: str, name: str, namespace: str, labels: tuple[tuple[str, str], ...], origin: str, w: Where
) -> NetworkPolicy:
    spec = mapping_field(value, path, w)
    check_keys(spec, _RULE_KEYS, path, w)
    if spec.get("nodeSelector") is not None:
        w.fail(f"{path}.nodeSelector", "only a CiliumClusterwideNetworkPolicy selects nodes; use endpointSelector")
    if spec.get("endpointSelector") is None:
        w.fail(f"{path}.endpointSelector", "required (exactly one of endpointSelector and nodeSelector)")
    for deny in ("ingressDeny", "egressDeny"):
        if spec.get(deny):
            w.fail(f"{path}.{deny}", "deny rules are not supported: synth evaluates allow rules")
    if not any(list_field(spec.get(d), f"{path}.{d}", w) for d in ("ingress", "egress", "ingressDeny", "egressDeny")):
        w.fail(path, "needs at least one non-empty ingress, ingressDeny, egress or egressDeny")
    _default_deny(spec.get("enableDefaultDeny"), f"{path}.enableDefaultDeny", w)
    directions: tuple[tuple[PolicyType, str], ...] = (("Ingress", "ingress"), ("Egress", "egress"))
    types = tuple(t for t, d in directions if list_field(spec.get(d), f"{path}.{d}", w))
    return NetworkPolicy(
        name=name,
        namespace=namespace,
        pod_selector=_endpoint_selector(spec["endpointSelector"], f"{path}.endpointSelector", w)[1]
        or LabelSelector(),
        policy_types=types,
        ingress=_rules(spec.get("ingress"), f"{path}.ingress", "from", w),
        egress=_rules(spec.get("egress"), f"{path}.egress", "to", w),
        labels=labels,
        origin=origin,
        api="cilium",
    )


def _default_deny(value: object, path: str, w: Where) -> None:
    body = mapping_field(value, path, w)
    check_keys(body, ("ingress", "egress"), path, w)
    for direction, flag in body.items():
        if not isinstance(flag, bool):
            w.fail(f"{path}.{direction}", "must be true or false")
        if flag is False:
            w.fail(f"{path}.{direction}", "false (a policy that only adds to others) is not supported")


def _rules(value: object, path: str, prefix: str, w: Where) -> tuple[Rule, ...]:
    rules = []
    kinds_here = _PEERS if prefix == "to" else tuple(p for p in _PEERS if p != "FQDNs")  # names are egress only
    allowed = (*(prefix + p for p in kinds_here), "toPorts", "icmps", "authentication")
    for i, item in enumerate(list_field(value, path, w)):
        rule_path = f"{path}[{i}]"
        body = mapping_field(item, rule_path, w)
        check_keys(body, allowed, rule_path, w)
        kinds = [p for p in kinds_here if body.get(prefix + p) is not None]
        if len(kinds) > 1:
            w.fail(rule_path, f"{' and '.join(prefix + k for k in kinds)} in one rule: the agent accepts one peer "
                              "kind per rule; write one rule each")
        if body.get("icmps") is not None and body.get("toPorts") is not None:
            w.fail(rule_path, "icmps and toPorts in one rule: the agent rejects it; write one rule each")
        ports, proxy, http = _to_ports(body.get("toPorts"), f"{rule_path}.toPorts", prefix == "to", w)
        peers = _peers(kinds[0], body[prefix + kinds[0]], f"{rule_path}.{prefix}{kinds[0]}", w) if kinds else None
        if body.get("icmps") is not None or (peers is None and not ports and not http) or peers == ():
            continue  # ICMP only, a default-deny marker (`{}`), or a peer list that selects nothing
        if ports or not http:
            rules.append(Rule(peers=peers or (), ports=ports, dns_proxy=proxy))
        rules += [Rule(peers=peers or (), ports=entry_ports, http=entries) for entry_ports, entries in http]
    return tuple(rules)


def _peers(kind: str, value: object, path: str, w: Where) -> tuple[Peer, ...]:
    if kind == "Requires":
        w.fail(path, "deprecated and rejected by the CRD (MaxItems=0)")
    if kind in _UNSUPPORTED_PEERS:
        w.fail(path, "not supported: synth evaluates endpoints, CIDRs, entities and DNS names")
    items = list_field(value, path, w)
    if kind == "Endpoints":
        return tuple(_endpoint_peer(item, f"{path}[{i}]", w) for i, item in enumerate(items))
    if kind == "CIDR":
        return tuple(Peer(ip_block=_cidr(item, f"{path}[{i}]", w)) for i, item in enumerate(items))
    if kind == "CIDRSet":
        return tuple(Peer(ip_block=_cidr_set(item, f"{path}[{i}]", w)) for i, item in enumerate(items))
    if kind == "Entities":
        for i, item in enumerate(items):
            if item not in ENTITIES:
                w.fail(f"{path}[{i}]", f"unknown entity {item!r} (the CRD accepts {', '.join(ENTITIES)})")
        return tuple(Peer(entity=str(item)) for item in items)
    return tuple(Peer(fqdn=_fqdn(item, f"{path}[{i}]", w)) for i, item in enumerate(items))


def _cidr(value: object, path: str, w: Where) -> IPBlock:
    return ip_block({"cidr": value}, path, w)


def _cidr_set(value: object, path: str, w: Where) -> IPBlock:
    body = mapping_field(value, path, w)
    check_keys(body, ("cidr", "cidrGroupRef", "cidrGroupSelector", "except"), path, w)
    if body.get("cidrGroupRef") is not None or body.get("cidrGroupSelector") is not None:
        w.fail(path, "CIDR groups are not supported: write cidr")
    return ip_block({"cidr": body.get("cidr"), "except": body.get("except")}, path, w)


def _fqdn(value: object, path: str, w: Where) -> FQDN:
    body = mapping_field(value, path, w)
    check_keys(body, ("matchName", "matchPattern"), path, w)
    given = [k for k in ("matchName", "matchPattern") if body.get(k) is not None]
    if len(given) != 1:
        w.fail(path, "exactly one of matchName and matchPattern")
    text, pattern = body[given[0]], given[0] == "matchPattern"
    if not isinstance(text, str) or not (_PATTERN if pattern else _NAME).fullmatch(text.rstrip(".")):
        allowed = "letters, digits, -, _, . and *" if pattern else "letters, digits, -, _ and ."
        w.fail(f"{path}.{given[0]}", f"{text!r} is not a DNS {'pattern' if pattern else 'name'} ({allowed})")
    return FQDN(text.lower().rstrip("."), pattern)


def _endpoint_peer(value: object, path: str, w: Where) -> Peer:
    spaces, pods = _endpoint_selector(value, path, w)
    return Peer(pod_selector=pods or LabelSelector(), namespace_selector=spaces)


def _endpoint_selector(value: object, path: str, w: Where) -> tuple[LabelSelector | None, LabelSelector | None]:
    """(namespace selector or None for the policy's own namespace, pod selector) of a Cilium selector."""
    body = mapping_field(value, path, w)
    plain = dict(mapping_field(body.get("matchLabels"), f"{path}.matchLabels", w))
    expressions = list_field(body.get("matchExpressions"), f"{path}.matchExpressions", w)
    labels: dict[str, Any] = {}
    for key, label in plain.items():
        labels[_plain_key(key, f"{path}.matchLabels", w)] = label
    renamed = [
        {**e, "key": _plain_key(e.get("key"), f"{path}.matchExpressions[{i}].key", w)} if isinstance(e, Mapping) else e
        for i, e in enumerate(expressions)
    ]
    selector = label_selector({**body, "matchLabels": labels, "matchExpressions": renamed}, path, w)
    spaces = _namespace_part(selector)
    pods = LabelSelector(
        tuple((k, v) for k, v in selector.match_labels if not _is_namespace_key(k)),
        tuple(r for r in selector.match_expressions if not _is_namespace_key(r.key)),
    )
    return spaces, pods


def _plain_key(key: object, path: str, w: Where) -> str:
    """A label key without its source prefix (`k8s:`, `any:`); other sources are not pod labels."""
    if not isinstance(key, str):
        w.fail(path, f"label key must be a string, got {key!r}")
    source, colon, rest = key.partition(":")
    if not colon:
        return key
    if source not in ("k8s", "any"):
        w.fail(path, f"{key!r}: labels of source {source!r} are not supported (use fromEntities/toEntities)")
    return rest


def _is_namespace_key(key: str) -> bool:
    return key == NAMESPACE_KEY or key.startswith(NAMESPACE_LABELS_PREFIX)


def _namespace_part(selector: LabelSelector) -> LabelSelector | None:
    """The namespace selector the namespace keys of a Cilium selector make, None when it has none."""
    def name(key: str) -> str:
        return NAMESPACE_NAME_LABEL if key == NAMESPACE_KEY else key.removeprefix(NAMESPACE_LABELS_PREFIX)

    labels = tuple((name(k), v) for k, v in selector.match_labels if _is_namespace_key(k))
    requirements = [r for r in selector.match_expressions if _is_namespace_key(r.key)]
    if not labels and not requirements:
        return None
    every = [r for r in requirements if r.key == NAMESPACE_KEY and r.operator == "Exists"]
    kept = tuple(Requirement(name(r.key), r.operator, r.values) for r in requirements if r not in every)
    return LabelSelector(tuple(sorted(labels)), kept)


_HTTPGroup = tuple[tuple[PortSpec, ...], tuple[HTTPRule, ...]]


def _to_ports(value: object, path: str, egress: bool, w: Where) -> tuple[tuple[PortSpec, ...], bool, list[_HTTPGroup]]:
    """The ports of `toPorts` (every protocol `ANY` stands for) without HTTP rules, whether a DNS rule
    proxies them, and the ports of each entry with HTTP rules with those rules."""
    specs: list[PortSpec] = []
    http: list[_HTTPGroup] = []
    proxy = False
    for i, item in enumerate(list_field(value, path, w)):
        entry_path = f"{path}[{i}]"
        body = mapping_field(item, entry_path, w)
        check_keys(body, ("ports", "rules", "serverNames", "listener", "originatingTLS", "terminatingTLS"),
                   entry_path, w)
        ports = list_field(body.get("ports"), f"{entry_path}.ports", w)
        if len(ports) > _PORTS_PER_ENTRY:
            w.fail(f"{entry_path}.ports", f"{len(ports)} ports: the CRD allows at most {_PORTS_PER_ENTRY}")
        entry = [_port(p, f"{entry_path}.ports[{j}]", w) for j, p in enumerate(ports)]
        kind = _l7_kind(body.get("rules"), f"{entry_path}.rules", w)
        if kind is not None:
            _check_l7(kind, entry, egress, f"{entry_path}.rules.{kind}", w)
        proxy = proxy or kind == "dns"
        found = [s for spec in entry for s in spec] if ports else [PortSpec(p) for p in ("TCP", "UDP", "SCTP")]
        if kind == "http":
            entries = _http(body["rules"]["http"], f"{entry_path}.rules.http", w)
            http.append((tuple(dict.fromkeys(found)), entries))
        else:
            specs += found
    return tuple(dict.fromkeys(specs)), proxy, http


def _http(value: object, path: str, w: Where) -> tuple[HTTPRule, ...]:
    """`rules.http` entries: `method` and `path` regular expressions (an empty list allows every request)."""
    entries = []
    for i, item in enumerate(list_field(value, path, w)):
        body = mapping_field(item, f"{path}[{i}]", w)
        check_keys(body, ("method", "path", "host", "headers", "headerMatches"), f"{path}[{i}]", w)
        texts = []
        for key in ("method", "path"):
            text = body.get(key) or ""
            if not isinstance(text, str):
                w.fail(f"{path}[{i}].{key}", f"must be a string (a regular expression), got {text!r}")
            try:
                re.compile(text)
            except re.error as e:
                w.fail(f"{path}[{i}].{key}", f"{text!r} is not a regular expression: {e}")
            texts.append(text)
        entries.append(HTTPRule(*texts))
    return tuple(dict.fromkeys(entries)) or (HTTPRule(),)


def _port(value: object, path: str, w: Where) -> list[PortSpec]:
    body = mapping_field(value, path, w)
    check_keys(body, ("port", "endPort", "protocol"), path, w)
    port, protocol, end = body.get("port"), body.get("protocol") or "ANY", body.get("endPort")
    if not isinstance(port, str):
        w.fail(f"{path}.port", "required, as a string (quote the number)" if port is None or isinstance(port, int)
               else f"must be a string, got {port!r}")
    if not _PORT.fullmatch(port):
        w.fail(f"{path}.port", f"{port!r} is neither a port number (0-65535) nor a port name")
    if protocol not in _PROTOCOLS:
        w.fail(f"{path}.protocol", f"unknown protocol {protocol!r} (use {', '.join(_PROTOCOLS)})")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or not port.isdigit()
                            or not int(port) <= end <= 65535):
        w.fail(f"{path}.endPort", f"{end!r} must be a number from port {port} to 65535")
    number: int | str | None = int(port) if port.isdigit() else port
    if number == 0:
        number, end = None, None
    protocols = ("TCP", "UDP", "SCTP") if protocol == "ANY" else tuple({protocol} & {"TCP", "UDP", "SCTP"})
    return [PortSpec(p, number, end) for p in protocols]  # type: ignore[arg-type]


def _l7_kind(value: object, path: str, w: Where) -> str | None:
    if value is None:
        return None
    body = mapping_field(value, path, w)
    check_keys(body, (*_L7_KINDS, "l7"), path, w)
    kinds = [k for k in _L7_KINDS if body.get(k) is not None]
    if len(kinds) != 1:
        w.fail(path, f"exactly one of {', '.join(_L7_KINDS)}")
    return kinds[0]


def _check_l7(kind: str, ports: list[list[PortSpec]], egress: bool, path: str, w: Where) -> None:
    """What the agent enforces on L7 rules: DNS only on egress, an explicit port and no range; TCP for the others."""
    specs = [s for entry in ports for s in entry]
    if kind == "dns" and not egress:
        w.fail(path, "DNS rules are egress only")
    if not specs or any(s.port is None or s.end_port is not None for s in specs):
        w.fail(path, "L7 rules need an explicit, non-zero port and no port range")
    if kind != "dns" and any(s.protocol != "TCP" for s in specs):
        w.fail(path, f"{kind} rules need protocol TCP")

