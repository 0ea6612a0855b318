"""Load deployed NetworkPolicies (files, `kubectl` Lists, stdin, a live cluster) into a `PolicySet`.

Every source goes through one converter, `synth.policy.manifest.policy_from_object`, which validates as
strictly as the API server and applies the upstream defaults. Objects that are not
`networking.k8s.io/v1` NetworkPolicies are skipped and reported, not fatal.

Origins are `file#N` with N the 1-based YAML document number (`file#N.items[i]` inside a List),
and the object URL for policies read from a cluster.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synth.base.errors import InputError, PolicyError
from synth.core.model import NetworkPolicy, PolicySet
from synth.policy.manifest import API_VERSION, policy_from_object

__all__ = [
    "LoadResult",
    "SkippedObject",
    "load_cluster",
    "load_policies",
]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml", ".json")
_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class SkippedObject:
    """An object that was read but is not a networking.k8s.io/v1 NetworkPolicy."""

    kind: str
    api_version: str
    name: str
    origin: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Policies loaded from files or a cluster, plus what was skipped and how much was read."""

    policies: PolicySet
    skipped: tuple[SkippedObject, ...] = ()
    files: int = 0
    documents: int = 0

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

    Accepts multi-document YAML, JSON, and `kind: List` / `NetworkPolicyList` documents with
    `items`. Objects without a namespace get `default_namespace`, as `kubectl apply` would.
    Raises `PolicyError` for unreadable files, invalid YAML/JSON, invalid or duplicate policies.
    """
    collector = _Collector(default_namespace)
    for name, text in _read_sources(paths):
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
    """Accumulates policies and skips across documents; rejects duplicate (namespace, name)."""

    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.policies: dict[tuple[str, str], NetworkPolicy] = {}
        self.skipped: list[SkippedObject] = []
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
            typed_list = doc.get("kind") == "NetworkPolicyList"
            for i, item in enumerate(items):
                self.add_object(item, f"{origin}.items[{i}]", typed_list=typed_list)
        else:
            self.add_object(doc, origin, typed_list=False)

    def add_object(self, obj: object, origin: str, typed_list: bool) -> None:
        if not isinstance(obj, Mapping):
            self.skipped.append(SkippedObject(type(obj).__name__, "", "", origin))
            return
        kind = str(obj.get("kind") or "")
        api_version = str(obj.get("apiVersion") or "")
        if typed_list and not kind:  # items of a NetworkPolicyList may omit kind and apiVersion
            kind, api_version = "NetworkPolicy", api_version or API_VERSION
        if kind != "NetworkPolicy" or api_version != API_VERSION:
            metadata = obj.get("metadata")
            name = str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
            self.skipped.append(SkippedObject(kind, api_version, name, origin))
            return
        self.add_policy(policy_from_object(obj, origin, self.default_namespace))

    def add_policy(self, policy: NetworkPolicy) -> None:
        previous = self.policies.get(policy.key)
        if previous is not None:
            raise PolicyError(
                f"{policy.origin} ({policy.namespace}/{policy.name}): duplicate NetworkPolicy, "
                f"also defined at {previous.origin}"
            )
        self.policies[policy.key] = policy

    def result(self) -> LoadResult:
        return LoadResult(
            policies=PolicySet.of(list(self.policies.values())),
            skipped=tuple(self.skipped),
            files=self.files,
            documents=self.documents,
        )


def _is_list(doc: Mapping[Any, Any]) -> bool:
    kind = doc.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and "items" in doc


# --- cluster ---------------------------------------------------------------------------------------


def load_cluster(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """List networking.k8s.io/v1 NetworkPolicies from a cluster (all namespaces, or the given ones).

    Uses the kubeconfig (default: `$KUBECONFIG` or `~/.kube/config`), or the in-cluster service
    account when `KUBERNETES_SERVICE_HOST` is set and no kubeconfig is given. Pages through the
    list with `limit`/`continue`. Raises `InputError` with the server URL and a hint when the
    configuration is unusable or the server cannot be reached or refuses.
    """
    from kubernetes import client as k8s_client  # noqa: PLC0415 - slow import, only when needed
    from kubernetes import config as k8s_config  # noqa: PLC0415

    configuration = k8s_client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (k8s_config.ConfigException, OSError, yaml.YAMLError, TypeError, KeyError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise InputError(f"{where}: cannot load the Kubernetes configuration: {e}") from e
    configuration.retries = 1
    server = str(configuration.host)
    api = k8s_client.NetworkingV1Api(k8s_client.ApiClient(configuration))
    collector = _Collector("default")
    scopes: Sequence[str | None] = sorted(set(namespaces)) if namespaces else [None]
    for namespace in scopes:
        for item in _list_pages(api, server, namespace, timeout):
            collector.documents += 1
            meta = item.get("metadata") or {}
            origin = (
                f"{server}/apis/{API_VERSION}/namespaces/{meta.get('namespace', '')}"
                f"/networkpolicies/{meta.get('name', '')}"
            )
            typed = {"apiVersion": API_VERSION, "kind": "NetworkPolicy", **item}
            collector.add_object(typed, origin, typed_list=True)
    return collector.result()


def _list_pages(api: Any, server: str, namespace: str | None, timeout: float) -> Iterator[dict[str, Any]]:
    """Yield raw items of every page; `continue` tokens come from the previous page."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": _PAGE_SIZE, "_preload_content": False, "_request_timeout": timeout}
        if token:
            kwargs["_continue"] = token
        try:
            if namespace is None:
                response = api.list_network_policy_for_all_namespaces(**kwargs)
            else:
                response = api.list_namespaced_network_policy(namespace, **kwargs)
            page = json.loads(response.data)
        except ApiException as e:
            raise InputError(f"{server}: listing NetworkPolicies failed: {_api_hint(e)}") from e
        except (HTTPError, OSError) as e:
            raise InputError(
                f"{server}: cannot reach the Kubernetes API server ({type(e).__name__}); "
                "check the kubeconfig context and that the cluster is up"
            ) from e
        except ValueError as e:
            raise InputError(f"{server}: the API server answered with invalid JSON: {e}") from e
        items = page.get("items") or []
        yield from (i for i in items if isinstance(i, dict))
        token = (page.get("metadata") or {}).get("continue") or None
        if token is None:
            return


def _api_hint(e: Any) -> str:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", "") or ""
    if status in (401, 403):
        return (
            f"HTTP {status} {reason}; the credentials need `list` on "
            "networkpolicies.networking.k8s.io (try `kubectl auth can-i list networkpolicies -A`)"
        )
    if status == 404:
        return f"HTTP 404 {reason}; the server does not serve {API_VERSION} NetworkPolicies"
    return f"HTTP {status} {reason}".rstrip()
