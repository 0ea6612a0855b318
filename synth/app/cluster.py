"""Load the deployed policies of a live cluster into a `PolicySet`, through the same converters as files.

NetworkPolicies always; CiliumNetworkPolicies and Calico (Staged)NetworkPolicies where the cluster serves
them (asked of the API server's discovery first: RBAC answers 403 for a resource that is not installed as for
one the credentials may not list); and the Pods of the same namespaces when a policy names a port. Lists
are paged with `limit`/`continue`; origins are the objects' URLs. Cluster-wide kinds
(CiliumClusterwideNetworkPolicy, Calico GlobalNetworkPolicy) are not evaluated: those in force are
counted and said in a warning, since verdicts leave them out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import yaml

from synth.app.deployed import Collector, LoadResult
from synth.base.errors import InputError
from synth.base.text import plural
from synth.core.model import PolicySet
from synth.policy import calico, cilium
from synth.policy.manifest import API_VERSION
from synth.policy.ports import policy_port_names

__all__ = ["load_cluster"]

_PAGE_SIZE = 500


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
_CLUSTER_WIDE = (
    _Resource("CiliumClusterwideNetworkPolicy", cilium.API_VERSION, "CiliumClusterwideNetworkPolicies",
              "ciliumclusterwidenetworkpolicies.cilium.io", "ciliumclusterwidenetworkpolicies", custom=True),
    _Resource("GlobalNetworkPolicy", calico.API_VERSION, "Calico GlobalNetworkPolicies",
              "globalnetworkpolicies.projectcalico.org", "globalnetworkpolicies", custom=True),
)  # fmt: skip
"""Cluster-scoped policy kinds synth does not evaluate: counted, so that their presence is said."""


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
    discovered = _discover(custom, server, timeout)
    listings = [
        (_POLICIES, (networking.list_network_policy_for_all_namespaces, networking.list_namespaced_network_policy)),
        *((r, _custom_listing(custom, r)) for r in _CUSTOM if _serves(discovered, r)),
    ]
    collector = Collector("default", source="cluster")
    collector.warnings += _cluster_wide(custom, discovered, server, timeout)
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


def _discover(custom: Any, server: str, timeout: float) -> dict[str, set[str] | None]:
    """The resources each custom group serves, by its discovery: empty when the group is not served (404),
    None when discovery failed otherwise (then every resource of the group is listed, and listing says
    why). Discovery is open to every authenticated user and tells a resource that is not installed from
    one the credentials may not list, which a list request cannot: RBAC refuses both alike."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    found: dict[str, set[str] | None] = {}
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
        found[group_version] = names
    return found


def _serves(discovered: dict[str, set[str] | None], resource: _Resource) -> bool:
    names = discovered.get(resource.api_version)
    return names is None or resource.path in names


def _cluster_wide(custom: Any, discovered: dict[str, set[str] | None], server: str, timeout: float) -> list[str]:
    """A warning for each cluster-scoped policy kind the cluster holds (discovery names it and a listing finds
    some, or may not be made): synth judges namespaced policies only, so verdicts leave those out."""
    warnings = []
    for resource in _CLUSTER_WIDE:
        if resource.path not in (discovered.get(resource.api_version) or ()):
            continue
        group, version = resource.api_version.split("/")
        listing = (partial(custom.list_cluster_custom_object, group, version, resource.path), None)
        try:
            count = sum(1 for _ in _list_pages(listing, resource, server, None, timeout))
        except _Refused as e:
            warnings.append(f"{e}; any {resource.plural} in force are not known to synth")
            continue
        if count:
            found = plural(count, resource.plural[:-3] + "y", resource.plural)
            warnings.append(
                f"{server}: {found} in force, not read: synth judges namespaced policies "
                f"only, so its verdicts leave {'it' if count == 1 else 'them'} out (`kubectl get {resource.rbac}`)"
            )
    return warnings


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
