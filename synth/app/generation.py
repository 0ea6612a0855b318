"""The stages `synth generate` and `synth edges` run, end to end, as library calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from synth.app.cluster import load_cluster
from synth.app.deployed import LoadResult, load_policies, policies_from_text
from synth.app.flows import observe_store
from synth.base.config import Settings
from synth.base.errors import GenerationError, InputError, PolicyError, UnsafePoliciesError, UsageError
from synth.base.text import plural
from synth.core.aggregate import EdgeSet
from synth.core.filters import TrafficFilter
from synth.core.model import KUBERNETES, PolicyFormat, PolicySet, Workload
from synth.core.synthesize import DEFAULT_DENY, FindingKind, Synthesis, synthesize
from synth.policy.diff import DiffResult, adopt_deployed_names, diff
from synth.policy.observed import Observed, pair_passes
from synth.policy.ports import attach_named_ports
from synth.policy.verify import VerifyResult, generation_gaps, selector_mismatches, verify
from synth.render.folder import GENERATED_MARK
from synth.render.jinja import render_kustomization, render_policy, render_report
from synth.render.report import Recording, ReportSettings, build_report, report_json
from synth.render.risks import RiskThresholds
from synth.render.tables import yaml_text
from synth.store.coverage import observation_window, recorded_sources
from synth.store.dataset import Store

_GAPS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Generated:
    """Policies, the edges they came from, the rendered files (relative path → text), the
    self-check of the policies against the flows they came from, and the diff against the
    deployed policies when those were given."""

    synthesis: Synthesis
    edges: EdgeSet
    files: dict[str, str]
    verification: VerifyResult
    diff: DiffResult | None = None
    left_out: tuple[str, ...] = ()  # system namespaces with traffic that --all-namespaces did not generate


def load_deployed(
    paths: Sequence[str] = (),
    *,
    cluster: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: Sequence[str] = (),
    files_option: str = "--deployed",
) -> LoadResult:
    """Deployed policies, with the workloads their named ports resolve on, from files (`-` is stdin)
    or the cluster. A file's objects without a namespace belong to the one namespace asked for, as
    with `kubectl apply -n`. `files_option` is how the command line names the files, for the hint."""
    if bool(paths) == cluster:
        what = "deployed policies" if files_option == "--deployed" else "policies"
        raise UsageError(f"give the {what} either as files ({files_option} PATH) or with --cluster")
    if cluster:
        return load_cluster(kubeconfig, context, namespaces or None)
    default = namespaces[0] if len(set(namespaces)) == 1 else "default"
    return load_policies(paths, default_namespace=default)


def verify_policies(
    store: Store,
    settings: Settings,
    policies: PolicySet,
    *,
    workloads: Sequence[Workload] = (),
    namespaces: Sequence[str] = (),
    since_ns: int | None = None,
    until_ns: int | None = None,
    traffic_filter: TrafficFilter | None = None,
    patterns: Sequence[str] = (),
) -> VerifyResult:
    """Replay the stored request flows (touching `namespaces`, or all; passing `traffic_filter`) through
    `policies`, named ports resolved on the pods `workloads` describe; what only the DNS-name `patterns`
    the user asked for allow is flagged."""
    # every workload recorded, not only those touching `namespaces`: the second half's candidates
    # (who else could connect) are drawn from all of them, as generate's self-check and diff do
    http = any(rule.http for policy in policies.policies for rule in (*policy.ingress, *policy.egress))
    observed = observe_store(store, settings, since_ns=since_ns, until_ns=until_ns, http=http)
    if traffic_filter is not None and not traffic_filter.is_empty:
        observed = replace(observed, pairs=tuple(p for p in observed.pairs if pair_passes(p, traffic_filter)))
    observed, named_ports = attach_named_ports(observed, workloads, policies)
    return verify(observed, policies, namespaces, settings.dns, named_ports, patterns)


def observed_namespaces(edges: EdgeSet) -> list[str]:
    """Namespaces that have pods with traffic in the edges."""
    found = set()
    for edge in edges.edges:
        for end in (edge.src, edge.dst):
            if end.kind == "pod" and end.namespace:
                found.add(end.namespace)
    return sorted(found)


def generate(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    since_ns: int | None = None,
    until_ns: int | None = None,
    deployed: PolicySet | None = None,
    workloads: Sequence[Workload] = (),
    policy_format: PolicyFormat = KUBERNETES,
) -> Generated:
    """Aggregate, synthesize, self-check and render the policies of the chosen namespaces.

    With `deployed`, proposed policies take the names of deployed ones that select the same pods
    in the same directions, and the result carries the diff against the deployed ones (their named
    ports resolved on the pods `workloads` describe). Raises
    `GenerationError` when the policies would deny traffic they were generated from, or a
    selector misses a pod whose flows made its rule: a bug in synth, never to be applied.
    """
    if not namespaces and not all_namespaces:
        raise UsageError("name at least one --namespace, or --all-namespaces")
    http = policy_format.l7 and policy_format.api == "cilium"
    observed = observe_store(store, settings, since_ns=since_ns, until_ns=until_ns, http=http)
    edges = observed.edges
    seen = observed_namespaces(edges)
    named = sorted(set(namespaces))
    left_out = tuple(ns for ns in seen if all_namespaces and ns in settings.system_namespaces and ns not in named)
    chosen = sorted({*named, *(ns for ns in seen if ns not in left_out)}) if all_namespaces else named
    missing = [ns for ns in chosen if ns not in seen]
    if missing:
        raise UsageError(
            f"no traffic of namespace {', '.join(missing)} in the store; namespaces seen: {', '.join(seen) or 'none'}"
        )
    synthesis = synthesize(edges, chosen, settings, policy_format)
    renamed: tuple[tuple[str, str, str], ...] = ()
    if deployed is not None:
        adopted, renamed = adopt_deployed_names(synthesis.policies, deployed)
        synthesis = replace(synthesis, policies=adopted)
    verification = self_check(observed, synthesis, settings)
    difference = None
    if deployed is not None:
        resolved, named_ports = attach_named_ports(observed, workloads, deployed)
        difference = diff(resolved, deployed, synthesis.policies, chosen, renamed, settings.dns, named_ports,
                          policy_format.fqdn_patterns)
    files = render_files(synthesis)
    check_rendered(files)
    return Generated(synthesis, edges, files, verification, difference, left_out)


def check_rendered(files: dict[str, str]) -> None:
    """Read every rendered policy back through the strict converter of its API (the CRD's structure
    and, for Cilium, the agent's rules): one that fails is a bug in synth and must not be applied."""
    policies = {name: text for name, text in files.items() if not name.endswith("kustomization.yaml")}
    try:
        policies_from_text(policies)
    except PolicyError as e:
        raise GenerationError(
            f"a generated policy fails validation (a bug in synth; please report it, and do not apply it): {e}"
        ) from e


def with_existing_namespaces(out_dir: str, files: dict[str, str]) -> dict[str, str]:
    """The files to write, the top kustomization also listing namespaces generated into `out_dir` before.

    Generating `payments` and then `shop` into one folder leaves both applicable with `kubectl apply -k`.
    """
    out = Path(out_dir)
    namespaces = {name.split("/", 1)[0] for name in files if "/" in name}
    if out.is_dir():
        for child in out.iterdir():
            marker = child / "kustomization.yaml"
            if child.is_dir() and marker.is_file() and marker.read_text(encoding="utf-8").startswith(GENERATED_MARK):
                namespaces.add(child.name)
    merged = dict(files)
    merged["kustomization.yaml"] = render_kustomization(sorted(namespaces))
    return merged


def write_text(path: str, text: str) -> None:
    """Write a report file (the diff of `generate --diff-out`), with a plain error when it cannot."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from e


def self_check(observed: Observed, synthesis: Synthesis, settings: Settings) -> VerifyResult:
    """Verify generated policies against the flows they came from; raise `GenerationError` loudly."""
    problems = list(selector_mismatches(synthesis.policies, observed.edges.pod_labels))
    patterns = synthesis.format.fqdn_patterns
    verification = verify(observed, synthesis.policies, synthesis.namespaces, settings.dns, patterns=patterns)
    gaps = generation_gaps(verification, include_attempts=settings.allow_dropped)
    for edge in gaps[:_GAPS_SHOWN]:
        problems.append(f"denies {edge.line()} ({edge.flows:,} flows): {edge.reasons[0] if edge.reasons else ''}")
    if len(gaps) > _GAPS_SHOWN:
        problems.append(f"... and {len(gaps) - _GAPS_SHOWN} more denied edges")
    if problems:
        raise GenerationError(
            "the generated policies fail their self-check (a bug in synth; please report it, and do not "
            "apply them):\n  " + "\n  ".join(problems)
        )
    return verification


_EXPLAINING = frozenset({
    FindingKind.NOT_ENFORCEABLE, FindingKind.UNSELECTABLE, FindingKind.UNKNOWN_PEER, FindingKind.PRIVATE_WORLD,
    FindingKind.DNS_NOT_COVERED,
})  # fmt: skip


def check_safe(generated: Generated, *, accept_denied: bool = False, strict: bool = False) -> None:
    """Refuse to hand over policies that deny observed flows (unless accepted) or, with `strict`,
    allow connections no flow used (other than those flagged as meant)."""
    verification, problems = generated.verification, []
    if verification.denied and not accept_denied:
        problems.append(
            f"the generated policies would deny {plural(verification.denied_flows, 'observed flow')} "
            f"({plural(len(verification.denied), 'edge')}):"
        )
        problems += [f"  denies {edge.line()} ({edge.flows:,} flows)" for edge in verification.denied[:_GAPS_SHOWN]]
        why = [f for f in generated.synthesis.findings if f.kind in _EXPLAINING]
        problems += [f"  why: {finding.detail}" for finding in why[:_GAPS_SHOWN]]
        problems.append("  fix what the reasons name, or pass --accept-denied to write them anyway")
    over = verification.over_permissive
    if strict and over:
        problems.append(f"the generated policies allow {plural(len(over), 'connection')} that no flow used:")
        problems += [f"  allows {a.line()} ({', '.join(a.rules)})" for a in over[:_GAPS_SHOWN]]
    if problems:
        raise UnsafePoliciesError("\n".join(problems) + "\nnothing was written")


def render_files(synthesis: Synthesis) -> dict[str, str]:
    """One file per policy under `<namespace>/`, a kustomization per namespace and one on top."""
    files: dict[str, str] = {}
    deny = f"{synthesis.format.policy_name(DEFAULT_DENY)}.yaml"
    for namespace in synthesis.namespaces:
        policies = synthesis.policies.in_namespace(namespace)
        names = []
        for policy in policies:
            name = f"{policy.name}.yaml"
            files[f"{namespace}/{name}"] = render_policy(policy)
            names.append(name)
        ordered = [*sorted(n for n in names if n != deny), deny]
        files[f"{namespace}/kustomization.yaml"] = render_kustomization(ordered)
    files["kustomization.yaml"] = render_kustomization(list(synthesis.namespaces))
    return files


def policy_stream(synthesis: Synthesis) -> str:
    """Every policy as one multi-document YAML stream, in apply order per namespace."""
    documents: list[str] = []
    deny = synthesis.format.policy_name(DEFAULT_DENY)
    for namespace in synthesis.namespaces:
        policies = synthesis.policies.in_namespace(namespace)
        ordered = [p for p in policies if p.name != deny] + [p for p in policies if p.name == deny]
        documents.extend(render_policy(p) for p in ordered)
    return "---\n".join(documents)


def describe(
    store: Store,
    generated: Generated,
    output: str = "markdown",
    *,
    out_dir: str = "policies",
    rare_flows: int = 5,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> str:
    """The PR description as GitHub markdown or JSON (`output` in `FORMATS`), with the default caps.

    `out_dir` is the folder the policies are written to, for the roll-out commands; `rare_flows`
    the flow count under which a rule is flagged as backed by little evidence; `since_ns` and
    `until_ns` must be the window `generated` was made from.
    """
    options = ReportSettings(thresholds=RiskThresholds(rare_flows=rare_flows), out_dir=out_dir, store=store.root_text)
    recording = Recording(observation_window(store, since_ns, until_ns), recorded_sources(store, since_ns, until_ns))
    report = build_report(generated, recording, options)
    if output == "yaml":
        return yaml_text(report_json(report))
    return report_json(report) if output == "json" else render_report(report)
