"""The stages `synth generate` and `synth edges` run, end to end, as library calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from synth.aggregate import EdgeSet, aggregate
from synth.config import Settings
from synth.errors import StoreError, UsageError
from synth.render import render_kustomization, render_policy
from synth.store import Store
from synth.synthesize import Synthesis, synthesize


@dataclass(frozen=True, slots=True)
class Generated:
    """Policies, the edges they came from, and the rendered files (relative path → text)."""

    synthesis: Synthesis
    edges: EdgeSet
    files: dict[str, str]


def load_edges(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> EdgeSet:
    """Aggregate the store, refusing an empty store with a hint."""
    if not store.files(since_ns, until_ns):
        if not store.files():
            raise StoreError(f"{store.root_text}: no flows stored yet; run `synth import hubble FILE...` first")
        raise StoreError(f"{store.root_text}: no flows stored in the requested time window")
    return aggregate(store, settings, namespaces=namespaces, since_ns=since_ns, until_ns=until_ns)


def observed_namespaces(edges: EdgeSet) -> list[str]:
    """Namespaces that have pods with traffic in the edges."""
    found = set()
    for row in edges.table.select(["src_kind", "src_namespace", "dst_kind", "dst_namespace"]).to_pylist():
        for side in ("src", "dst"):
            if row[f"{side}_kind"] == "pod" and row[f"{side}_namespace"]:
                found.add(row[f"{side}_namespace"])
    return sorted(found)


def generate(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Generated:
    """Aggregate, synthesize and render the policies of the chosen namespaces."""
    if not namespaces and not all_namespaces:
        raise UsageError("name at least one --namespace, or --all-namespaces")
    edges = load_edges(store, settings, since_ns=since_ns, until_ns=until_ns)
    seen = observed_namespaces(edges)
    chosen = seen if all_namespaces else sorted(set(namespaces))
    missing = [ns for ns in chosen if ns not in seen]
    if missing:
        raise UsageError(
            f"no traffic of namespace {', '.join(missing)} in the store; namespaces seen: {', '.join(seen) or 'none'}"
        )
    synthesis = synthesize(edges, chosen, settings)
    return Generated(synthesis, edges, render_files(synthesis))


def render_files(synthesis: Synthesis) -> dict[str, str]:
    """One file per policy under `<namespace>/`, a kustomization per namespace and one on top."""
    files: dict[str, str] = {}
    for namespace in synthesis.namespaces:
        policies = synthesis.policies.in_namespace(namespace)
        names = []
        for policy in policies:
            name = f"{policy.name}.yaml"
            files[f"{namespace}/{name}"] = render_policy(policy)
            names.append(name)
        ordered = [*sorted(n for n in names if n != "default-deny.yaml"), "default-deny.yaml"]
        files[f"{namespace}/kustomization.yaml"] = render_kustomization(ordered)
    files["kustomization.yaml"] = render_kustomization(list(synthesis.namespaces))
    return files


def policy_stream(synthesis: Synthesis) -> str:
    """Every policy as one multi-document YAML stream, in apply order per namespace."""
    documents: list[str] = []
    for namespace in synthesis.namespaces:
        policies = synthesis.policies.in_namespace(namespace)
        ordered = [p for p in policies if p.name != "default-deny"] + [p for p in policies if p.name == "default-deny"]
        documents.extend(render_policy(p) for p in ordered)
    return "---\n".join(documents)
