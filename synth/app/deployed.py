"""Load deployed policies (files, `kubectl` Lists, stdin, a live cluster) into a `PolicySet`,
with the workloads their named ports resolve on.

Every policy goes through the one converter of its API, which validates as strictly as the API server
(and, for Cilium, the agent) and applies the upstream defaults: `synth.policy.manifest.policy_from_object`
for NetworkPolicies, `synth.policy.cilium` for CiliumNetworkPolicies, `synth.policy.calico` for Calico
(Staged)NetworkPolicies. Workload manifests beside the policies
(Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, and their Lists) go
through `synth.policy.workloads.workload_from_object`, which reads their pod labels and named
container ports. Other objects are skipped and reported, not fatal.

A live cluster is read by `synth.app.cluster`, into the same `Collector`: the same kinds, the same
converters, so a policy means the same from a file and from the API server.

Objects of different kinds may share a name, as in the API server: policies are keyed by kind, namespace
and name, and only the same kind, namespace and name twice is a duplicate. A StagedNetworkPolicy is
judged as the policy it stages, in place of the Calico NetworkPolicy of its name when both are loaded
(what Calico shows as pending: `PolicySet.in_effect`); loading warns when it stands in for one.

Origins are `file#N` with N the 1-based YAML document number (`file#N.items[i]` inside a List),
and the object URL for objects read from a cluster.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synth.base.errors import PolicyError
from synth.core.model import NetworkPolicy, PolicyAPI, PolicySet, Workload, WorkloadSource
from synth.policy import calico, cilium
from synth.policy.manifest import API_VERSION, policy_from_object
from synth.policy.workloads import is_workload, workload_from_object

__all__ = [
    "Collector",
    "LoadResult",
    "SkippedObject",
    "load_policies",
]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZE_GROUP = "kustomize.config.k8s.io/"


@dataclass(frozen=True, slots=True)
class SkippedObject:
    """An object that was read but is neither a policy synth reads nor a workload."""

    kind: str
    api_version: str
    name: str
    origin: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Policies loaded from files or a cluster, the workloads their named ports resolve on, what was
    skipped, how much was read, and warnings to show (a workload no pod can be matched to, pods the
    credentials may not list)."""

    policies: PolicySet
    skipped: tuple[SkippedObject, ...] = ()
    files: int = 0
    documents: int = 0
    workloads: tuple[Workload, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def loaded(self) -> int:
        """How many NetworkPolicies were loaded."""
        return len(self.policies.policies)

    def skipped_by_kind(self) -> tuple[tuple[str, int], ...]:
        """(`apiVersion/kind`, count) of skipped objects, sorted."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            label = f"{s.api_version}/{s.kind}" if s.api_version else s.kind
            counts[label] = counts.get(label, 0) + 1
        return tuple(sorted(counts.items()))


# --- files -----------------------------------------------------------------------------------------


def load_policies(paths: Sequence[str], default_namespace: str = "default") -> LoadResult:
    """Load NetworkPolicies from files, folders (recursive, sorted) and `-` (stdin).

    Accepts multi-document YAML, JSON, and `kind: List` / `NetworkPolicyList` (`PodList`, ...)
    documents with `items`. Objects without a namespace get `default_namespace`, as `kubectl apply`
    would. Workload manifests among them are read for their named ports. Raises `PolicyError` for
    unreadable files, invalid YAML/JSON, invalid or duplicate policies, invalid workload ports or labels.
    """
    collector = Collector(default_namespace)
    for name, text in _read_sources(paths):
        collector.files += 1
        for index, doc in enumerate(_parse_documents(name, text), start=1):
            collector.add_document(doc, f"{name}#{index}")
    return collector.result()


def policies_from_text(texts: Mapping[str, str], default_namespace: str = "default") -> LoadResult:
    """Load the policies of YAML texts (`name → text`, as generation renders them), strictly."""
    collector = Collector(default_namespace)
    for name, text in sorted(texts.items()):
        collector.files += 1
        for index, doc in enumerate(_parse_documents(name, text), start=1):
            collector.add_document(doc, f"{name}#{index}")
    return collector.result()


def _read_sources(paths: Sequence[str]) -> Iterator[tuple[str, str]]:
    for raw in paths:
        if raw == "-":
            yield "<stdin>", sys.stdin.read()
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
            for file in files:
                yield str(file), _read_text(file)
        else:
            yield raw, _read_text(path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise PolicyError(f"{path}: no such file or folder") from e
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}: cannot read: {e}") from e


def _parse_documents(name: str, text: str) -> list[Any]:
    if name.endswith(".json") or (name == "<stdin>" and text.lstrip()[:1] in ("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as e:
            if name.endswith(".json"):
                raise PolicyError(f"{name}:{e.lineno}: invalid JSON: {e.msg}") from e
    try:
        return list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise PolicyError(f"{name}{line}: invalid YAML: {problem}") from e


class Collector:
    """Accumulates policies, workloads and skips across documents; rejects duplicate policies (the same kind,
    namespace and name twice).

    Workloads may repeat (a kustomize base and its patch): where they disagree on a port, the port
    stays unresolved (`synth.policy.ports`).
    """

    def __init__(self, default_namespace: str, source: WorkloadSource = "manifests") -> None:
        self.default_namespace = default_namespace
        self.source: WorkloadSource = source
        self.policies: dict[tuple[str, str, PolicyAPI, bool], NetworkPolicy] = {}
        self.workloads: list[Workload] = []
        self.skipped: list[SkippedObject] = []
        self.warnings: list[str] = []
        self.files = 0
        self.documents = 0

    def add_document(self, doc: object, origin: str) -> None:
        if doc is None:  # an empty document, e.g. a trailing `---`
            return
        self.documents += 1
        if isinstance(doc, Mapping) and _is_list(doc):
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise PolicyError(f"{origin}: items: must be a list")
            item_type = _item_type(doc)
            for i, item in enumerate(items):
                self.add_object(item, f"{origin}.items[{i}]", item_type)
        else:
            self.add_object(doc, origin)

    def add_object(self, obj: object, origin: str, item_type: tuple[str, str] | None = None) -> None:
        """One object; `item_type` is the (kind, apiVersion) of a typed List's items, which may omit both."""
        if not isinstance(obj, Mapping):
            self.skipped.append(SkippedObject(type(obj).__name__, "", "", origin))
            return
        kind = str(obj.get("kind") or "")
        api_version = str(obj.get("apiVersion") or "")
        if item_type is not None and not kind:
            kind, api_version = item_type[0], api_version or item_type[1]
            obj = {**obj, "kind": kind, "apiVersion": api_version}
        if kind == "NetworkPolicy" and api_version == API_VERSION:
            self.add_policy(policy_from_object(obj, origin, self.default_namespace))
        elif kind == cilium.KIND and api_version == cilium.API_VERSION:
            for policy in cilium.policies_from_cnp(obj, origin, self.default_namespace):
                self.add_policy(policy)
        elif kind in calico.KINDS and api_version == calico.API_VERSION:
            self.add_policy(calico.policy_from_calico(obj, origin, self.default_namespace))
        elif is_workload(kind, api_version):
            self.add_workload(workload_from_object(obj, origin, self.default_namespace, self.source))
        elif kind == "Kustomization" and api_version.startswith(KUSTOMIZE_GROUP):
            return  # how a policies folder (synth's own output too) is applied; its resources are read as files
        else:
            metadata = obj.get("metadata")
            name = str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
            self.skipped.append(SkippedObject(kind, api_version, name, origin))

    def add_workload(self, workload: Workload) -> None:
        if workload.labels:
            self.workloads.append(workload)
        elif self.source == "manifests":  # a cluster's unlabelled pods are no news
            self.warnings.append(
                f"{workload.origin} ({workload.describe()}): no pod labels (no pod template?), so no pod can be "
                "matched to it: its named ports are not used"
            )

    def add_policy(self, policy: NetworkPolicy) -> None:
        """Keyed by kind, namespace and name: objects of different kinds may share a name, as in the API server."""
        previous = self.policies.get(policy.object_key)
        if previous is not None:
            raise PolicyError(
                f"{policy.origin} ({policy.namespace}/{policy.name}): duplicate {policy.kind}, "
                f"also defined at {previous.origin}"
            )
        self.policies[policy.object_key] = policy

    def result(self) -> LoadResult:
        policies = PolicySet.of(list(self.policies.values()))
        replaced = tuple(
            f"{staged.origin} ({staged.namespace}/{staged.name}): the Calico StagedNetworkPolicy stands in for the "
            f"Calico NetworkPolicy of its name ({enforced.origin}): traffic is judged as if it were applied"
            for staged, enforced in policies.staged_over()
        )
        return LoadResult(
            policies=policies,
            skipped=tuple(self.skipped),
            files=self.files,
            documents=self.documents,
            workloads=tuple(self.workloads),
            warnings=(*self.warnings, *replaced),
        )


def _is_list(doc: Mapping[Any, Any]) -> bool:
    kind = doc.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and "items" in doc


def _item_type(doc: Mapping[Any, Any]) -> tuple[str, str] | None:
    """(kind, apiVersion) of the items of a typed List (`NetworkPolicyList`, `PodList`); None for `List`."""
    kind = str(doc.get("kind")).removesuffix("List")
    if kind == "NetworkPolicy":
        return kind, str(doc.get("apiVersion") or API_VERSION)
    api_version = str(doc.get("apiVersion") or "")
    if (kind, api_version) in ((cilium.KIND, cilium.API_VERSION), *((k, calico.API_VERSION) for k in calico.KINDS)):
        return kind, api_version
    return (kind, api_version) if is_workload(kind, api_version) else None
