"""Settings that shape identity and generation, with the defaults DESIGN.md gives.

One frozen `Settings` value travels from the CLI into the library; nothing reads globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Labels that change on every rollout, run or revision: never part of a selector.
VOLATILE_LABELS: tuple[str, ...] = (
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
    "io.kubernetes.pod.namespace",
    "app.kubernetes.io/version",
    "helm.sh/chart",
    "chart",
)
VOLATILE_PREFIXES: tuple[str, ...] = ("io.cilium.k8s.policy.", "io.cilium.k8s.namespace.labels.")
# Left out when a stable identity key is present, unless needed to tell workloads apart (otherwise they may be
# all there is).
SOFT_VOLATILE_LABELS: tuple[str, ...] = ("version",)

# Stable identity keys, most preferred first. Each entry is (required key, optional companions).
STABLE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("app.kubernetes.io/name", ("app.kubernetes.io/component",)),
    ("app", ()),
    ("k8s-app", ()),
    ("name", ()),
)

# Keys that commonly tell apart workloads sharing a stable key (one `app`, several tiers, versions or a canary),
# most preferred first; the stable keys above come before them, any other key after them.
SEPARATING_KEYS: tuple[str, ...] = (
    "tier",
    "component",
    "role",
    "track",
    "version",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/part-of",
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# A recording shorter than this may miss daily jobs (backups, reports, CronJobs): said wherever a verdict is given.
SHORT_WINDOW_HOURS = 24

# Namespaces of the cluster itself and of its network plugin: a default-deny there can take down
# name resolution, node components or the CNI, so `--all-namespaces` leaves them out unless named.
SYSTEM_NAMESPACES: tuple[str, ...] = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "cilium-secrets",
    "kube-flannel",
)


@dataclass(frozen=True, slots=True)
class DnsTarget:
    """Where cluster DNS lives: the pods every egress-isolated pod must reach."""

    namespace: str = "kube-system"
    pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    ports: tuple[int, ...] = (53,)


@dataclass(frozen=True, slots=True)
class Settings:
    """Knobs of identity and generation; the defaults are the documented behaviour."""

    volatile_labels: tuple[str, ...] = VOLATILE_LABELS
    volatile_prefixes: tuple[str, ...] = VOLATILE_PREFIXES
    soft_volatile_labels: tuple[str, ...] = SOFT_VOLATILE_LABELS
    stable_keys: tuple[tuple[str, tuple[str, ...]], ...] = STABLE_KEYS
    separating_keys: tuple[str, ...] = SEPARATING_KEYS
    dns: DnsTarget = field(default_factory=DnsTarget)
    system_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    # Distinct world sources on one port at or above which ingress is treated as public.
    public_ingress_threshold: int = 10
    # Opt-ins that widen what becomes a rule.
    allow_host_traffic: bool = False
    allow_dropped: bool = False
    # How many pods/names an evidence comment lists before it says "+N more".
    evidence_list_limit: int = 5
