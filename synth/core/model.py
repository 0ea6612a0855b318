"""Typed records that cross module boundaries: label selectors, the NetworkPolicy model, and the
workloads whose container ports named-port rules resolve on.

The same `NetworkPolicy` type carries synth's generated policies (with evidence) and policies
loaded from YAML or a cluster, so the engine, diff and verify treat both alike. Every type is a
frozen, slotted dataclass; collections are tuples, sorted where order carries no meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
PolicyAPI = Literal["kubernetes", "cilium", "calico"]
Protocol = Literal["TCP", "UDP", "SCTP"]
PolicyType = Literal["Ingress", "Egress"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `matchExpressions` entry of a label selector."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Upstream semantics: `NotIn` and `DoesNotExist` match an object that lacks the key."""
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A `metav1.LabelSelector`: `matchLabels` and `matchExpressions`, ANDed; empty matches all."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSelector:
        """A selector of exactly these `matchLabels`, sorted by key."""
        return cls(match_labels=tuple(sorted(labels.items())))

    @property
    def is_empty(self) -> bool:
        """True for `{}`, which selects everything."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def canonical(self) -> str:
        """`key=value,...` sorted by key; expressions follow, sorted, as `key Op (v1|v2)` or `key Op`.

        The same selector gives the same string whatever order its parts were given in (edges and
        names are keyed by it).
        """
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels)]
        expressions = sorted((r.key, r.operator, tuple(sorted(set(r.values)))) for r in self.match_expressions)
        parts += [f"{key} {op} ({'|'.join(values)})" if values else f"{key} {op}" for key, op, values in expressions]
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class IPBlock:
    """An `ipBlock` peer: `cidr` minus each `except` range."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FQDN:
    """A DNS name peer: Cilium `toFQDNs` (`matchName` or `matchPattern`) or Calico `domains`.

    Names are kept lower-case without the trailing dot. `pattern` True means the text may hold `*`,
    read by the dialect of `api` (Cilium: `*` within one label, a leading `**.` several labels;
    Calico: a `*` label stands for one or more labels).
    """

    text: str
    pattern: bool = False


@dataclass(frozen=True, slots=True)
class Peer:
    """One element of a rule's `from`/`to` list.

    `pod_selector` None means the field is absent (all pods of the selected namespaces, or of
    the policy's namespace when `namespace_selector` is absent too, which validation forbids
    together with a missing `ip_block`). An empty `LabelSelector` is `{}`.
    `entity` (a Cilium entity such as `kube-apiserver`) and `fqdn` are the native peers Cilium and
    Calico add; a peer has exactly one of the three kinds (selectors, `ip_block`, `entity`, `fqdn`).
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None
    entity: str | None = None
    fqdn: FQDN | None = None


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One `ports` entry. `port` None means every port of `protocol`; a str is a named port."""

    protocol: Protocol = "TCP"
    port: int | str | None = None
    end_port: int | None = None


L7_MAX_PATHS = 20
"""HTTP entries per peer and port, by default, before a port keeps a plain L4 rule."""


@dataclass(frozen=True, slots=True)
class HTTPRule:
    """One Cilium `rules.http` entry: regular expressions a request's method and path (with its
    query) must match in full; empty matches any."""

    method: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was observed behind a generated rule; rendered as a YAML comment."""

    flows: int
    first_seen: datetime
    last_seen: datetime
    pods: tuple[str, ...] = ()
    peer_pods: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # the addresses behind a DNS-name rule
    requests: tuple[str, ...] = ()  # behind an HTTP rule: each entry, the requests it stands for


@dataclass(frozen=True, slots=True)
class Rule:
    """An ingress or egress rule. Empty `peers` means any peer, empty `ports` any port.

    `dns_proxy` marks a Cilium egress rule to the DNS servers that carries `rules.dns`, so the
    agent learns the addresses behind names (what `toFQDNs` rules need); it changes no L3/L4 verdict.
    `http` makes it a Cilium L7 rule: its ports are allowed at L4 as by any rule, and an HTTP request
    on them must match one entry (the proxy answers others with 403).
    """

    peers: tuple[Peer, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    evidence: Evidence | None = None
    dns_proxy: bool = False
    http: tuple[HTTPRule, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A policy with `policyTypes` already made explicit, in the L3/L4 meaning the engine evaluates.

    `api` says which API it is written for: a networking.k8s.io/v1 NetworkPolicy, a Cilium
    CiliumNetworkPolicy or a Calico projectcalico.org/v3 (Staged)NetworkPolicy (`tier`, `order`,
    `staged`). `origin` says where a loaded policy came from (`file.yaml#2`), for error messages and reasons.
    """

    name: str
    namespace: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[PolicyType, ...] = ("Ingress",)
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    comment: tuple[str, ...] = ()
    origin: str = ""
    api: PolicyAPI = "kubernetes"
    tier: str = ""
    order: float | None = None
    staged: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): unique among policies of one kind (generated ones are all of one kind)."""
        return (self.namespace, self.name)

    @property
    def object_key(self) -> tuple[str, str, PolicyAPI, bool]:
        """(namespace, name, api, staged): unique within a policy set. Objects of different kinds may share a
        name: a NetworkPolicy and a CiliumNetworkPolicy, a Calico NetworkPolicy and a StagedNetworkPolicy."""
        return (self.namespace, self.name, self.api, self.staged)

    @property
    def kind(self) -> str:
        """The kind of object, as messages name it: NetworkPolicy (networking.k8s.io/v1), CiliumNetworkPolicy,
        Calico NetworkPolicy or Calico StagedNetworkPolicy."""
        if self.api == "calico":
            return "Calico StagedNetworkPolicy" if self.staged else "Calico NetworkPolicy"
        return "CiliumNetworkPolicy" if self.api == "cilium" else "NetworkPolicy"

    @property
    def resource(self) -> str:
        """The resource as kubectl names it in full (`kubectl delete RESOURCE NAME`): the short names are
        ambiguous once Calico's API server serves `networkpolicies` too."""
        if self.api == "calico":
            return "stagednetworkpolicies.projectcalico.org" if self.staged else "networkpolicies.projectcalico.org"
        return "ciliumnetworkpolicies.cilium.io" if self.api == "cilium" else "networkpolicies.networking.k8s.io"


DEFAULT_TIER = "default"
"""The Calico tier a policy without `spec.tier` is in (and where Kubernetes NetworkPolicies run)."""


def tiered_name(name: str, tier: str) -> str:
    """The name of a Calico policy in `tier`: `<tier>.<name>` outside the default tier, as Calico 3.29 to
    3.31 require (3.32 takes any name); `name` itself in the default tier and without a tier (`""`)."""
    return name if tier in ("", DEFAULT_TIER) else f"{tier}.{name}"


@dataclass(frozen=True, slots=True)
class PolicyFormat:
    """Which API generated policies are written for, and its options.

    `staged`: Calico `StagedNetworkPolicy` (watched before enforced); `calico_enterprise`: Calico
    `destination.domains` for world egress by DNS name (open source Calico lacks it); `tier` and
    `order`: where Calico policies sit (outside the default tier their names start with `<tier>.`,
    `policy_name`). `fqdn_patterns`: the DNS-name patterns the user asked for
    (lower-case, without the trailing dot, in the order given; only with `by_name`): the names seen
    that one matches are allowed by the first such pattern instead of one by one. `l7` (Cilium):
    HTTP rules where every peer of a port was seen making HTTP requests, at most `l7_max_paths`
    generalised paths per peer and port (else the port stays L4).
    """

    api: PolicyAPI = "kubernetes"
    staged: bool = False
    calico_enterprise: bool = False
    tier: str = DEFAULT_TIER
    order: float = 100.0
    fqdn_patterns: tuple[str, ...] = ()
    l7: bool = False
    l7_max_paths: int = L7_MAX_PATHS

    def policy_name(self, name: str) -> str:
        """What the generated policy `name` (`default-deny`, ...) is called in this format (`tiered_name`)."""
        return tiered_name(name, self.tier) if self.api == "calico" else name

    @property
    def by_name(self) -> bool:
        """Whether world egress whose destination had DNS names is allowed by name."""
        return self.api == "cilium" or (self.api == "calico" and self.calico_enterprise)


KUBERNETES = PolicyFormat()
"""The default format: networking.k8s.io/v1 NetworkPolicy."""


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A set of NetworkPolicies, sorted by (namespace, name) and, where objects of several kinds share a name,
    by kind."""

    policies: tuple[NetworkPolicy, ...] = ()

    @classmethod
    def of(cls, policies: list[NetworkPolicy] | tuple[NetworkPolicy, ...]) -> PolicySet:
        """A set sorted by namespace, name and kind."""
        return cls(tuple(sorted(policies, key=lambda p: p.object_key)))

    def in_namespace(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        """The policies of one namespace."""
        return tuple(p for p in self.policies if p.namespace == namespace)

    def in_effect(self) -> tuple[NetworkPolicy, ...]:
        """The policies that decide traffic when the staged ones are applied, as Calico's pending verdict
        (`policies.pending`) has it: a Calico StagedNetworkPolicy stands in for the Calico NetworkPolicy of its
        namespace and name (with `stagedAction: Delete`, it removes it). Other kinds are never replaced."""
        replaced = {enforced.object_key for _, enforced in self.staged_over()}
        return tuple(p for p in self.policies if p.object_key not in replaced)

    def staged_over(self) -> tuple[tuple[NetworkPolicy, NetworkPolicy], ...]:
        """(staged, enforced) for each Calico NetworkPolicy that a StagedNetworkPolicy of its name stands in for."""
        calico = [p for p in self.policies if p.api == "calico"]
        enforced = {p.key: p for p in calico if not p.staged}
        return tuple((p, enforced[p.key]) for p in calico if p.staged and p.key in enforced)

    def refs(self) -> dict[tuple[str, str, PolicyAPI, bool], str]:
        """How reasons name each policy (by `object_key`): `ns/name`, or `ns/name(api)` where objects of several
        kinds share the name (`x/web(cilium)`, `x/web(calico-staged)`). Never a space: a rule is `ns/name egress[0]`."""
        counts: dict[tuple[str, str], int] = {}
        for p in self.policies:
            counts[p.key] = counts.get(p.key, 0) + 1
        return {
            p.object_key: f"{p.namespace}/{p.name}"
            + (f"({p.api}{'-staged' if p.staged else ''})" if counts[p.key] > 1 else "")
            for p in self.policies
        }

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces that have at least one policy, sorted."""
        return tuple(sorted({p.namespace for p in self.policies}))


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A named container port of a pod: what a named-port rule (`port: http`) resolves to."""

    name: str
    port: int
    protocol: Protocol = "TCP"


WorkloadSource = Literal["manifests", "cluster"]


@dataclass(frozen=True, slots=True)
class Workload:
    """Pods as a manifest or the cluster describes them, for named ports: their labels and named container ports.

    `kind` is `Pod` or the controller (`Deployment`, `CronJob`, ...); `labels` are the pod's own
    (for a Pod) or its pod template's, sorted; `ports` are the named ports of every container and
    init container, sorted (one name may appear twice when two containers declare it).
    `source` says whether it came from manifests beside the policies or from the cluster's pods.
    """

    kind: str
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[ContainerPort, ...]
    source: WorkloadSource = "manifests"
    origin: str = ""

    def describe(self) -> str:
        """`Deployment shop/web`."""
        return f"{self.kind} {self.namespace}/{self.name}"
