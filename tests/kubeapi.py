"""A fake Kubernetes API server for tests: list collections as the real one answers them (JSON Lists
without `kind` on the items, `limit`/`continue` pagination), one item per page; discovery of the custom
resource groups it serves (`/apis/cilium.io/v2`); and a kubeconfig for it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_LIST_KINDS = {  # (apiVersion, collection) -> the kind of its List
    ("networking.k8s.io/v1", "networkpolicies"): "NetworkPolicyList",
    ("v1", "pods"): "PodList",
    ("cilium.io/v2", "ciliumnetworkpolicies"): "CiliumNetworkPolicyList",
    ("projectcalico.org/v3", "networkpolicies"): "NetworkPolicyList",
    ("projectcalico.org/v3", "stagednetworkpolicies"): "StagedNetworkPolicyList",
    ("cilium.io/v2", "ciliumclusterwidenetworkpolicies"): "CiliumClusterwideNetworkPolicyList",
    ("projectcalico.org/v3", "globalnetworkpolicies"): "GlobalNetworkPolicyList",
}
_DISCOVERY = ("cilium.io/v2", "projectcalico.org/v3")  # custom groups: served when one of their collections is


@dataclass
class FakeAPIServer:
    """Collections by URL path (`/api/v1/pods`), served one item per page; `status` fails a path (or `*`).

    `/apis/cilium.io/v2` and `/apis/projectcalico.org/v3` answer discovery (an APIResourceList) with the
    collections of the group that `collections` or `status` name, and 404 when there is none: the CRD (or
    the Calico API server) is not installed.
    """

    collections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)
    url: str = ""

    def paths(self) -> list[tuple[str, list[str] | None, list[str] | None]]:
        """(path, continue, limit) of each request, in order."""
        return [(path, query.get("continue"), query.get("limit")) for path, query, _ in self.requests]

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status = self.status.get(path, self.status.get("*", 200))
        if status != 200:
            return status, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status}
        if path.removeprefix("/apis/") in _DISCOVERY:
            return self.discovery(path.removeprefix("/apis/"))
        items = self.collections.get(path)
        if items is None:
            return 404, {"kind": "Status", "code": 404}
        index = int(query["continue"][0].removeprefix("page-")) - 1 if "continue" in query else 0
        metadata: dict[str, Any] = {"resourceVersion": "4712"}
        if index + 1 < len(items):  # the last page has no continue token
            metadata["continue"] = f"page-{index + 2}"
        api_version, collection = _collection(path)
        kind = _LIST_KINDS[(api_version, collection)]
        return 200, {"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items[index : index + 1]}

    def discovery(self, group_version: str) -> tuple[int, dict[str, Any]]:
        """The APIResourceList of a custom group, or 404 when none of its collections is served."""
        paths = (*self.collections, *self.status)
        names = sorted({name for gv, name in map(_collection, paths) if gv == group_version})
        if not names:
            return 404, {"kind": "Status", "code": 404}
        resources = [
            {"name": name, "namespaced": True, "kind": _LIST_KINDS[(group_version, name)].removesuffix("List"),
             "verbs": ["get", "list", "watch"]}
            for name in names
        ]  # fmt: skip
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                     "resources": resources}  # fmt: skip


def _collection(path: str) -> tuple[str, str]:
    """(apiVersion, collection) of a collection path: `/apis/cilium.io/v2/namespaces/x/ciliumnetworkpolicies` is
    (cilium.io/v2, ciliumnetworkpolicies), `/api/v1/pods` (v1, pods); ("", "") for anything else."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) in (3, 5):
        return parts[1], parts[-1]
    if parts[0] == "apis" and len(parts) in (4, 6):
        return f"{parts[1]}/{parts[2]}", parts[-1]
    return "", ""


@contextmanager
def serving(fake: FakeAPIServer) -> Iterator[FakeAPIServer]:
    """Serve `fake` on a free local port until the block ends; `fake.url` is its address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            fake.requests.append((url.path, query, self.headers.get("Authorization", "")))
            status, body = fake.answer(url.path, query)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def kubeconfig(tmp_path: Path, server: str) -> str:
    """A kubeconfig with one context, `test`, for `server` with a bearer token."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{server}"}}
users:
- name: test
  user: {{token: secret-token}}
contexts:
- name: test
  context: {{cluster: test, user: test}}
current-context: test
"""
    )
    return str(path)


def api_pod(name: str, namespace: str, labels: dict[str, str], ports: list[dict[str, Any]],
            init_ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Pod as the API server returns it inside a PodList (no kind, defaulted fields, status)."""
    spec: dict[str, Any] = {
        "containers": [
            {"name": "app", "image": "registry.example/app:1", "ports": [{"protocol": "TCP", **p} for p in ports],
             "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"},
        ],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "nodeName": "node-1",
    }  # fmt: skip
    if init_ports is not None:
        spec["initContainers"] = [
            {"name": "proxy", "image": "registry.example/proxy:1", "restartPolicy": "Always",
             "ports": [{"protocol": "TCP", **p} for p in init_ports]},
        ]  # fmt: skip
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "4711",
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name.rsplit("-", 1)[0],
                                 "uid": "rs", "controller": True}],
        },
        "spec": spec,
        "status": {"phase": "Running", "podIP": "10.0.1.1"},
    }
