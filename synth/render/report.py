"""The pull-request description of a generation: a reviewer can approve the policies from it.

`build_report` turns a generation (policies, edges, self-check, diff against the deployed set) and
its `Recording` (window, hourly counts, inputs, read from the store by the app) into a typed `Report`, section by
section: summary, what changes for traffic, rules and their evidence, risks, dependency graph,
roll-out. Every decision is made here and in the modules it calls (`store.coverage`, `naming`,
`risks`, `graph`); `jinja.render_report` formats it as GitHub markdown through a dumb
template, `report_json` as JSON for CI bots (gate on `summary.ok`). Strings from flows stay raw in
the report: the template's filters escape them, JSON needs no escaping.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from synth.core.aggregate import Edge, EdgeEnd, EdgeSet
from synth.core.model import DEFAULT_TIER, PolicyFormat, PolicySet
from synth.core.synthesize import ALLOW_DNS, DEFAULT_DENY, Synthesis
from synth.policy.diff import DiffResult
from synth.policy.observed import EndpointRef
from synth.policy.verify import VerifyResult
from synth.render.checks import named_ports_text
from synth.render.graph import Graph, dependency_graph
from synth.render.naming import Naming, WorkloadRules, ports_text, workload_rules
from synth.render.native import number_text
from synth.render.risks import Risk, RiskThresholds, risks
from synth.store.coverage import Source, Window

__all__ = [
    "FORMATS",
    "REPORT_VERSION",
    "Generation",
    "Recording",
    "Report",
    "ReportSettings",
    "build_report",
    "report_json",
]

FORMATS = ("markdown", "json")

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Risk thresholds, graph caps, the folder the policies are written to and the store (for the commands)."""

    thresholds: RiskThresholds = field(default_factory=RiskThresholds)
    graph_nodes: int = 40
    graph_edges: int = 80
    surface_rows: int = 50
    out_dir: str = "policies"
    store: str = "./synth-data"


@dataclass(frozen=True, slots=True)
class PolicyCounts:
    """Policies of one namespace by how they compare with the deployed ones (all added without them)."""

    namespace: str
    added: int
    changed: int
    removed: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Scope, window, sources, volume, policy counts and the one-line verdict.

    `ok` is False when the policies deny observed flows or block an observed connection that the
    deployed set allows for no known reason: a CI gate.
    """

    namespaces: tuple[str, ...]
    window: Window
    sources: tuple[Source, ...]
    edges: int
    flows: int
    attempt_edges: int
    attempt_flows: int
    policies: tuple[PolicyCounts, ...]
    deployed: bool
    verify: str
    denied_flows: int
    newly_blocked_unexplained: int
    ok: bool
    deployed_verify: str = ""  # both halves for the deployed set, when one was given
    policy_format: str = ""  # the API the policies are written for, when not networking.k8s.io/v1


@dataclass(frozen=True, slots=True)
class TrafficChange:
    """One observed connection whose fate changes; `explanation` says why a blocked one is fine."""

    change: str  # newly-blocked | newly-allowed | changed-unjudged
    source: str
    destination: str
    port: str
    flows: int
    deployed_reason: str
    proposed_reason: str
    explanation: str
    explained: bool


@dataclass(frozen=True, slots=True)
class SurfacePath:
    """A connection between observed workloads, allowed today, never observed, closed by the proposal."""

    source: str
    destination: str
    port: str


@dataclass(frozen=True, slots=True)
class Isolation:
    """What default-deny does to a namespace, said when no deployed set was given."""

    namespace: str
    workloads: int
    ingress_rules: int
    egress_rules: int
    dns_ports: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """The connectivity diff against the deployed policies (`deployed`), else `isolation`."""

    deployed: bool
    newly_blocked: tuple[TrafficChange, ...]
    newly_allowed: tuple[TrafficChange, ...]
    unjudged: tuple[TrafficChange, ...]
    unchanged: int
    surface: tuple[SurfacePath, ...]
    surface_total: int
    isolation: tuple[Isolation, ...]
    named_ports: str = ""  # what resolving the deployed policies' named ports did, "" when nothing


@dataclass(frozen=True, slots=True)
class Rollout:
    """Commands to apply, watch and roll back one namespace's policies, in order."""

    namespace: str
    apply_allow: tuple[str, ...]
    apply_deny: str
    remove: tuple[str, ...]
    watch: tuple[str, ...]
    watch_notes: tuple[str, ...]
    rollback: tuple[str, ...]
    rollback_notes: tuple[str, ...]
    tier_note: str = ""  # a Calico tier other than default must exist first: what to check, and `tier_check`
    tier_check: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the PR description says, in section order."""

    summary: Summary
    traffic: Traffic
    workloads: tuple[WorkloadRules, ...]
    risks: tuple[Risk, ...]
    graphs: tuple[Graph, ...]
    rollouts: tuple[Rollout, ...]


class Generation(Protocol):
    """What a generation produced (`synth.app.generation.Generated`), as far as the report reads it."""

    @property
    def synthesis(self) -> Synthesis: ...
    @property
    def edges(self) -> EdgeSet: ...
    @property
    def files(self) -> dict[str, str]: ...
    @property
    def verification(self) -> VerifyResult: ...
    @property
    def diff(self) -> DiffResult | None: ...


@dataclass(frozen=True, slots=True)
class Recording:
    """How complete the recording behind a generation is: its window and its inputs."""

    window: Window
    sources: tuple[Source, ...]


def build_report(
    generated: Generation, recording: Recording, report_settings: ReportSettings | None = None
) -> Report:
    """The PR description of `generated`, made from the flows `recording` describes."""
    options = report_settings or ReportSettings()
    synthesis, diff = generated.synthesis, generated.diff
    namespaces = synthesis.namespaces
    naming = Naming(generated.edges)
    rows = [row for row in generated.edges.edges if _touches(row, namespaces)]
    window, sources = recording.window, recording.sources
    traffic = _traffic(diff, synthesis, rows, naming, options.surface_rows)
    workloads = tuple(workload_rules(synthesis.policies, naming))
    unexplained = sum(1 for change in traffic.newly_blocked if not change.explained)
    verification = generated.verification
    summary = Summary(
        namespaces=namespaces,
        window=window,
        sources=sources,
        edges=sum(1 for row in rows if row.allowed),
        flows=sum(row.count for row in rows if row.allowed),
        attempt_edges=sum(1 for row in rows if not row.allowed),
        attempt_flows=sum(row.count for row in rows if not row.allowed),
        policies=_policy_counts(diff, synthesis.policies, namespaces),
        deployed=diff is not None,
        verify=verification.summary(),
        denied_flows=verification.denied_flows,
        newly_blocked_unexplained=unexplained,
        ok=verification.ok and unexplained == 0,
        deployed_verify=diff.deployed_check.summary() if diff and diff.deployed_check else "",
        policy_format=_format_text(synthesis.format),
    )
    found = risks(
        synthesis.findings,
        workloads,
        rows,
        generated.edges.identities,
        naming,
        window,
        sources,
        options.thresholds,
        synthesis.format,
    )
    graphs = tuple(
        dependency_graph(ns, synthesis.policies, naming, options.graph_nodes, options.graph_edges) for ns in namespaces
    )
    rollouts = tuple(_rollout(ns, generated.files, sources, options, diff, synthesis.format) for ns in namespaces)
    return Report(summary, traffic, workloads, found, graphs, rollouts)


def _format_text(policy_format: PolicyFormat) -> str:
    """`Cilium CiliumNetworkPolicy (cilium.io/v2)`, ...; empty for Kubernetes NetworkPolicy."""
    if policy_format.api == "cilium":
        return "Cilium CiliumNetworkPolicy (cilium.io/v2)" + _patterns_text(policy_format)
    if policy_format.api == "calico":
        edition = "Calico Enterprise/Cloud" if policy_format.calico_enterprise else "Calico"
        kind = "StagedNetworkPolicy" if policy_format.staged else "NetworkPolicy"
        staged = ": staged, shows what would be denied and enforces nothing" if policy_format.staged else ""
        where = (f"projectcalico.org/v3, tier {policy_format.tier}, order {number_text(policy_format.order)}; "
                 "lower orders are evaluated first within a tier")
        return f"{edition} {kind} ({where}){staged}" + _patterns_text(policy_format)
    return ""


def _patterns_text(policy_format: PolicyFormat) -> str:
    """`; DNS-name patterns asked for: *.example.com`, or nothing."""
    patterns = policy_format.fqdn_patterns
    return f"; DNS-name patterns asked for: {', '.join(patterns)}" if patterns else ""


def _touches(row: Edge, namespaces: Sequence[str]) -> bool:
    return any(end.kind == "pod" and end.namespace in namespaces for end in (row.src, row.dst))


def _policy_counts(diff: DiffResult | None, policies: PolicySet, namespaces: Sequence[str]) -> tuple[PolicyCounts, ...]:
    result = []
    for namespace in namespaces:
        if diff is None:
            result.append(PolicyCounts(namespace, len(policies.in_namespace(namespace)), 0, 0, 0))
            continue
        status = Counter(o.status for o in diff.objects if o.namespace == namespace)
        result.append(
            PolicyCounts(namespace, status["added"], status["changed"], status["removed"], status["unchanged"])
        )
    return tuple(result)


# --- what changes for traffic -------------------------------------------------------------------------


def _ref(end: EdgeEnd | EndpointRef) -> tuple[str, str | None, str]:
    return (end.kind, end.namespace, end.selector)


def _traffic(
    diff: DiffResult | None,
    synthesis: Synthesis,
    rows: Sequence[Edge],
    naming: Naming,
    surface_rows: int,
) -> Traffic:
    if diff is None:
        isolation = tuple(_isolation(ns, synthesis, rows) for ns in synthesis.namespaces)
        return Traffic(False, (), (), (), 0, (), 0, isolation)
    attempts = {(_ref(row.src), _ref(row.dst), row.protocol, row.port) for row in rows if not row.allowed}
    changes: dict[str, list[TrafficChange]] = {"newly-blocked": [], "newly-allowed": [], "changed-unjudged": []}
    for change in diff.connectivity:
        if change.change not in changes:
            continue
        key = (_ref(change.src), _ref(change.dst), change.protocol, change.port)
        explanation, explained = "", True
        if change.change == "newly-blocked":
            if key in attempts:
                explanation = "dropped by policy when it was recorded (a denied attempt): it stays blocked"
            else:
                explanation = "observed traffic that the proposal blocks: do not merge; please report it"
                explained = False
        changes[change.change].append(
            TrafficChange(
                change.change,
                naming.ref(change.src),
                naming.ref(change.dst),
                change.protocol if change.port is None else f"{change.protocol} {change.port}",
                change.flows,
                change.deployed_reason,
                change.proposed_reason,
                explanation,
                explained,
            )
        )
    surface = tuple(
        SurfacePath(naming.ref(c.src), naming.ref(c.dst), f"{c.protocol} {c.port}") for c in diff.surface[:surface_rows]
    )
    return Traffic(
        deployed=True,
        newly_blocked=tuple(changes["newly-blocked"]),
        newly_allowed=tuple(changes["newly-allowed"]),
        unjudged=tuple(changes["changed-unjudged"]),
        unchanged=diff.change_counts()["unchanged"],
        surface=surface,
        surface_total=len(diff.surface),
        isolation=(),
        named_ports=named_ports_text(diff.named_ports),
    )


def _isolation(namespace: str, synthesis: Synthesis, rows: Sequence[Edge]) -> Isolation:
    own = synthesis.policies.in_namespace(namespace)
    selected = [p for p in own if not p.pod_selector.is_empty]
    dns_name = synthesis.format.policy_name(ALLOW_DNS)
    dns = next((p for p in own if p.name == dns_name and p.egress), None)
    attempts = sum(1 for r in rows if not r.allowed and namespace in (r.src.namespace, r.dst.namespace))
    return Isolation(
        namespace=namespace,
        workloads=len({p.pod_selector for p in selected}),
        ingress_rules=sum(len(p.ingress) for p in selected),
        egress_rules=sum(len(p.egress) for p in selected),
        dns_ports=", ".join(ports_text(dns.egress[0])) if dns is not None else "",
        attempts=attempts,
    )


# --- roll-out ------------------------------------------------------------------------------------------


def _rollout(
    namespace: str,
    files: Mapping[str, str],
    sources: Sequence[Source],
    options: ReportSettings,
    diff: DiffResult | None,
    policy_format: PolicyFormat,
) -> Rollout:
    """Apply allow policies one by one, default-deny last; watch; roll back default-deny first. Policies
    in a Calico tier other than `default` need the Tier first: the roll-out checks that it exists.

    Per-file commands rather than `kubectl apply -k`, so the reviewer can stop between steps, and
    because kubectl before 1.27 ignores the kustomization's `sortOptions` (kustomize then sorts by
    name). Applying default-deny notes the time, so the check afterwards replays only what came later.
    """
    folder = posixpath.join(options.out_dir, namespace)
    own = sorted(name.split("/", 1)[1] for name in files if name.startswith(f"{namespace}/"))
    deny_file = f"{policy_format.policy_name(DEFAULT_DENY)}.yaml"
    allow = [name for name in own if name not in (deny_file, "kustomization.yaml")]
    deny = shlex.quote(posixpath.join(folder, deny_file))
    kinds = {s.source for s in sources} - {"?"}
    watch, notes = [], []
    if "hubble" in kinds or not kinds:
        watch.append(f"hubble observe --verdict DROPPED --namespace {shlex.quote(namespace)} --follow")
    if "calico" in kinds or not kinds:
        notes.append(
            "Calico: watch the flow logs for records with action deny whose source or destination namespace is "
            f"{namespace} (flows.log of Calico Enterprise or Cloud, or Whisker and Goldmane in Calico 3.30+)."
        )
    if policy_format.staged:
        notes.append(
            "Staged: these policies enforce nothing. Their simulated verdict shows as policies.pending in the flow "
            "logs and Whisker; when nothing wanted is denied there, regenerate without --staged and apply."
        )
    watch.append(
        f"synth verify --policies {shlex.quote(folder)} --namespace {shlex.quote(namespace)} "
        f'--store {shlex.quote(options.store)} --since "$ROLLED_OUT"'
    )
    notes.append(
        "synth verify replays the flows recorded since default-deny was applied (keep recording into the same "
        "store) through the policies: exit 1 if any is denied."
    )
    objects = diff.objects if diff is not None else ()
    removed: dict[str, list[str]] = {}
    for o in objects:
        if o.namespace == namespace and o.status == "removed":
            removed.setdefault(o.resource or "networkpolicies.networking.k8s.io", []).append(o.name)
    remove = tuple(
        f"kubectl delete {resource} --namespace {shlex.quote(namespace)} {' '.join(map(shlex.quote, sorted(names)))}"
        for resource, names in sorted(removed.items())
    )
    rollback_notes = (
        ("Then apply the previous versions of the changed and removed policies (revert this PR and apply).",)
        if diff is not None
        else ()
    )
    tier = policy_format.tier if policy_format.api == "calico" and policy_format.tier != DEFAULT_TIER else ""
    return Rollout(
        namespace=namespace,
        apply_allow=tuple(f"kubectl apply -f {shlex.quote(posixpath.join(folder, name))}" for name in allow),
        apply_deny=f"kubectl apply -f {deny} && ROLLED_OUT=$(date -u +%Y-%m-%dT%H:%M:%SZ)",
        remove=remove,
        watch=tuple(watch),
        watch_notes=tuple(notes),
        rollback=(f"kubectl delete -f {deny}", f"kubectl delete -k {shlex.quote(folder)} --ignore-not-found"),
        rollback_notes=rollback_notes,
        tier_note=f"The policies are in the Calico tier {tier}, which must exist before they are applied "
                  "(this fails if it does not):" if tier else "",
        tier_check=f"kubectl get tiers.projectcalico.org {shlex.quote(tier)}" if tier else "",
    )


# --- JSON ----------------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def report_json(report: Report) -> str:
    """The report as JSON (sorted keys, UTC times), the same content as the markdown."""
    document = {"version": REPORT_VERSION, **asdict(report)}
    return json.dumps(document, indent=2, sort_keys=True, default=_json_default) + "\n"
