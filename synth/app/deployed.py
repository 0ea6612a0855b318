"""Load deployed policies (files, `kubectl` Lists, stdin, a live cluster) into a `PolicySet`,
with the workloads their named ports resolve on.

Every policy goes through the one converter of its API, which validates as strictly as the API server
(and, for Cilium, the agent) and applies the upstream defaults: `synth.policy.manifest.policy_from_object`
for NetworkPolicies, `synth.policy.cilium` for CiliumNetworkPolicies, `synth.policy.calico` for Calico
(Staged)NetworkPolicies. Workload manifests beside the policies
(Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, and their Lists) go
through `synth.policy.workloads.workload_from_object`, which reads their pod labels and named
container ports. Other objects are skipped and reported, not fatal.

From a cluster (all namespaces, or the given ones), the same kinds are listed: networking.k8s.io/v1
NetworkPolicies, cilium.io/v2 CiliumNetworkPolicies, and Calico projectcalico.org/v3 NetworkPolicies
and StagedNetworkPolicies (served by the Calico API server). A custom resource the cluster does not
serve is left out silently (a cluster without Cilium or Calico is normal); one the credentials may not
list is an error with the RBAC to check. The Pods are listed too when a policy names a port. Cluster-wide
policies (CiliumClusterwideNetworkPolicies, Calico GlobalNetworkPolicies) are not read.

Objects of different kinds may share a name, as in the API server: policies are keyed by kind, namespace
and name, and only the same kind, namespace and name twice is a duplicate. A StagedNetworkPolicy is
judged as the policy it stages, in place of the Calico NetworkPolicy of its name when both are loaded
(what Calico shows as pending: `PolicySet.in_effect`); loading warns when it stands in for one.

Origins are `file#N` with N the 1-based YAML document number (`file#N.items[i]` inside a List),
and the object URL for objects read from a cluster.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from synth.base.errors import InputError, PolicyError
from synth.core.model import NetworkPolicy, PolicyAPI, PolicySet, Workload, WorkloadSource
from synth.policy import calico, cilium
from synth.policy.manifest import API_VERSION, policy_from_object
from synth.policy.ports import policy_port_names
from synth.policy.workloads import is_workload, workload_from_object

__all__ = [
    "LoadResult",
    "SkippedObject",
    "load_cluster",
    "load_policies",
]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml", ".json")
_PAGE_SIZE = 500
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
    collector = _Collector(default_namespace)
    for name, text in _read_sources(paths):
        collector.files += 1
        for index, doc in enumerate(_parse_documents(name, text), start=1):
            collector.add_document(doc, f"{name}#{index}")
    return collector.result()


def policies_from_text(texts: Mapping[str, str], default_namespace: str = "default") -> LoadResult:
    """Load the policies of YAML texts (`name → text`, as generation renders them), strictly."""
    collector = _Collector(default_namespace)
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


class _Collector:
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


# --- cluster ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Resource:
    """A resource listed from the cluster: its kind, how messages and origins name it, and whether it is a
    custom resource, which a cluster may lack (no CRD, no Calico API server)."""

    kind: str
    api_version: str
    plural: str  # as messages say it: NetworkPolicies
    rbac: str  # as RBAC names it: networkpolicies.networking.k8s.io
    path: str  # URL path segment of the collection: networkpolicies
    custom: bool = False

    @property
    def prefix(self) -> str:
        """`apis/networking.k8s.io/v1` or, for the core group, `api/v1`."""
        return f"apis/{self.api_version}" if "/" in self.api_version else f"api/{self.api_version}"

    @property
    def kubectl(self) -> str:
        """How `kubectl auth can-i` names it: a built-in resource by its path, a custom one in full (Calico's
        `networkpolicies` are not networking.k8s.io's)."""
        return self.rbac if self.custom else self.path


_POLICIES = _Resource("NetworkPolicy", API_VERSION, "NetworkPolicies", "networkpolicies.networking.k8s.io",
                      "networkpolicies")  # fmt: skip
_PODS = _Resource("Pod", "v1", "Pods", "pods", "pods")
_CUSTOM = (
    _Resource(cilium.KIND, cilium.API_VERSION, "CiliumNetworkPolicies", "ciliumnetworkpolicies.cilium.io",
              "ciliumnetworkpolicies", custom=True),
    _Resource("NetworkPolicy", calico.API_VERSION, "Calico NetworkPolicies", "networkpolicies.projectcalico.org",
              "networkpolicies", custom=True),
    _Resource("StagedNetworkPolicy", calico.API_VERSION, "Calico StagedNetworkPolicies",
              "stagednetworkpolicies.projectcalico.org", "stagednetworkpolicies", custom=True),
)  # fmt: skip


class _Refused(InputError):
    """The API server refused to list a resource (HTTP 401/403): the credentials lack `list` on it."""


def load_cluster(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """List the deployed policies from a cluster (all namespaces, or the given ones): networking.k8s.io/v1
    NetworkPolicies, and where the cluster serves them, cilium.io/v2 CiliumNetworkPolicies and Calico
    projectcalico.org/v3 NetworkPolicies and StagedNetworkPolicies (served by the Calico API server); and
    the Pods of the same namespaces when a policy names a port (for their container ports).

    Uses the kubeconfig (default: `$KUBECONFIG` or `~/.kube/config`), or the in-cluster service
    account when `KUBERNETES_SERVICE_HOST` is set and no kubeconfig is given. Pages through the
    lists with `limit`/`continue`. A custom resource the server does not serve (no CRD, no Calico API
    server: discovery or the list answers 404) is left out silently. Raises `InputError` with the
    server URL and a hint when the configuration is unusable or the server cannot be reached or refuses
    to list a policy resource; credentials that may not list Pods only leave named ports unresolved,
    with a warning.
    """
    from kubernetes import client as k8s_client  # noqa: PLC0415 - slow import, only when needed

    api_client = _api_client(kubeconfig, context)
    server = str(api_client.configuration.host)
    networking, core = k8s_client.NetworkingV1Api(api_client), k8s_client.CoreV1Api(api_client)
    custom = k8s_client.CustomObjectsApi(api_client)
    listings = [
        (_POLICIES, (networking.list_network_policy_for_all_namespaces, networking.list_namespaced_network_policy)),
        *((r, _custom_listing(custom, r)) for r in _served(custom, server, timeout)),
    ]
    collector = _Collector("default", source="cluster")
    scopes: Sequence[str | None] = sorted(set(namespaces)) if namespaces else [None]
    for namespace in scopes:
        for resource, listing in listings:
            for item in _list_pages(listing, resource, server, namespace, timeout):
                collector.documents += 1
                collector.add_object(item, _origin(server, resource, item), (resource.kind, resource.api_version))
    if not policy_port_names(PolicySet.of(list(collector.policies.values()))):
        return collector.result()
    try:
        for namespace in scopes:
            for item in _list_pages((core.list_pod_for_all_namespaces, core.list_namespaced_pod), _PODS, server,
                                    namespace, timeout):  # fmt: skip
                collector.add_object(item, _origin(server, _PODS, item), (_PODS.kind, _PODS.api_version))
    except _Refused as e:
        collector.workloads.clear()  # some namespaces' pods only: better none than a partial answer
        collector.warnings.append(f"{e}; named ports of the policies stay unresolved")
    return collector.result()


def _served(custom: Any, server: str, timeout: float) -> list[_Resource]:
    """The custom policy resources to list: those their group's discovery names, and all of a group whose
    discovery fails otherwise than with a 404 (listing them then says why). Discovery is open to every
    authenticated user and tells a resource that is not installed from one the credentials may not list,
    which a list request cannot: RBAC refuses both alike."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    served: list[_Resource] = []
    for group_version in dict.fromkeys(r.api_version for r in _CUSTOM):
        group, version = group_version.split("/")
        try:
            response = custom.get_api_resources(group, version, _preload_content=False, _request_timeout=timeout)
            names: set[str] | None = {r.get("name") for r in json.loads(response.data).get("resources") or []}
        except ApiException as e:
            names = set() if getattr(e, "status", None) == 404 else None
        except (HTTPError, OSError) as e:
            raise _unreachable(server, e) from e
        except (ValueError, AttributeError):
            names = None
        served += [r for r in _CUSTOM if r.api_version == group_version and (names is None or r.path in names)]
    return served


def _custom_listing(custom: Any, resource: _Resource) -> tuple[Any, Any]:
    """(all namespaces, one namespace) list calls of a custom resource, shaped as `_list_pages` calls them."""
    group, version = resource.api_version.split("/")

    def list_namespaced(namespace: str, **kwargs: Any) -> Any:
        return custom.list_namespaced_custom_object(group, version, namespace, resource.path, **kwargs)

    return partial(custom.list_cluster_custom_object, group, version, resource.path), list_namespaced


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    """A client for the kubeconfig's (or the in-cluster) API server; `InputError` when unusable."""
    from kubernetes import client as k8s_client  # noqa: PLC0415 - slow import, only when needed
    from kubernetes import config as k8s_config  # noqa: PLC0415

    configuration = k8s_client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call, unused-ignore]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call, unused-ignore]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (k8s_config.ConfigException, OSError, yaml.YAMLError, TypeError, KeyError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise InputError(f"{where}: cannot load the Kubernetes configuration: {e}") from e
    configuration.retries = 1
    return k8s_client.ApiClient(configuration)


def _origin(server: str, resource: _Resource, item: Mapping[str, Any]) -> str:
    meta = item.get("metadata") or {}
    return f"{server}/{resource.prefix}/namespaces/{meta.get('namespace', '')}/{resource.path}/{meta.get('name', '')}"


def _list_pages(
    listing: tuple[Any, Any], resource: _Resource, server: str, namespace: str | None, timeout: float
) -> Iterator[dict[str, Any]]:
    """Yield raw items of every page of (all namespaces, one namespace) `listing`; `continue` tokens
    come from the previous page. A custom resource the server does not serve (404) has none."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    list_all, list_namespaced = listing
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": _PAGE_SIZE, "_preload_content": False, "_request_timeout": timeout}
        if token:
            kwargs["_continue"] = token
        try:
            response = list_all(**kwargs) if namespace is None else list_namespaced(namespace, **kwargs)
            page = json.loads(response.data)
        except ApiException as e:
            status = getattr(e, "status", None)
            if status == 404 and resource.custom:
                return
            error = _Refused if status in (401, 403) else InputError
            raise error(f"{server}: listing {resource.plural} failed: {_api_hint(e, resource, namespace)}") from e
        except (HTTPError, OSError) as e:
            raise _unreachable(server, e) from e
        except ValueError as e:
            raise InputError(f"{server}: the API server answered with invalid JSON: {e}") from e
        items = page.get("items") or []
        yield from (i for i in items if isinstance(i, dict))
        token = (page.get("metadata") or {}).get("continue") or None
        if token is None:
            return


def _unreachable(server: str, e: Exception) -> InputError:
    return InputError(
        f"{server}: cannot reach the Kubernetes API server ({type(e).__name__}); "
        "check the kubeconfig context and that the cluster is up"
    )


def _api_hint(e: Any, resource: _Resource, namespace: str | None) -> str:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", "") or ""
    if status in (401, 403):
        scope = "-A" if namespace is None else f"-n {namespace}"
        return (
            f"HTTP {status} {reason}; the credentials need `list` on "
            f"{resource.rbac} (try `kubectl auth can-i list {resource.kubectl} {scope}`)"
        )
    if status == 404:
        return f"HTTP 404 {reason}; the server does not serve {resource.api_version} {resource.plural}"
    return f"HTTP {status} {reason}".rstrip()
