"""Write small Hubble captures in tests: one call per flow, real jsonpb field names and nesting."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.sources.hubble.files import HubbleFileSource
from synth.sources.reader import InputFile


@dataclass(frozen=True)
class Pod:
    """A pod endpoint as Hubble describes it."""

    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    workload: str | None = None
    ns_labels: dict[str, str] = field(default_factory=dict)

    def endpoint(self) -> dict[str, Any]:
        labels = [f"k8s:{k}={v}" for k, v in self.labels.items()]
        labels += [
            f"k8s:io.cilium.k8s.namespace.labels.{k}={v}"
            for k, v in {"kubernetes.io/metadata.name": self.namespace, **self.ns_labels}.items()
        ]
        labels.append(f"k8s:io.kubernetes.pod.namespace={self.namespace}")
        result: dict[str, Any] = {
            "identity": 1000 + abs(hash(tuple(sorted(self.labels.items())))) % 50000,
            "namespace": self.namespace,
            "labels": sorted(labels),
            "pod_name": self.name,
        }
        if self.workload:
            kind, _, name = self.workload.partition("/")
            result["workloads"] = [{"name": name, "kind": kind}]
        return result


@dataclass(frozen=True)
class Peer:
    """A non-pod endpoint: world, host, remote-node, kube-apiserver."""

    kind: str
    ip: str

    def endpoint(self) -> dict[str, Any]:
        identity = {"world": 2, "host": 1, "remote-node": 6, "kube-apiserver": 7}[self.kind]
        return {"identity": identity, "labels": [f"reserved:{self.kind}"]}


def flow(
    src: Pod | Peer,
    dst: Pod | Peer,
    port: int,
    *,
    protocol: str = "TCP",
    verdict: str = "FORWARDED",
    is_reply: bool | None = False,
    time: str = "2026-11-20T10:00:00Z",
    sport: int = 40000,
    direction: str = "EGRESS",
    names: Iterable[str] = (),
    drop_reason: str | None = None,
    http: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One `hubble observe -o jsonpb` line; with `http` (method, URL) an L7 HTTP request record."""
    body: dict[str, Any] = {
        "time": time,
        "verdict": verdict,
        "IP": {"source": src.ip, "destination": dst.ip, "ipVersion": "IPv6" if ":" in dst.ip else "IPv4"},
        "l4": {protocol: {"source_port": sport, "destination_port": port}},
        "source": src.endpoint(),
        "destination": dst.endpoint(),
        "Type": "L3_L4",
        "traffic_direction": direction,
        "event_type": {"type": 4},
    }
    if is_reply is not None:
        body["is_reply"] = is_reply
    if names:
        body["destination_names"] = list(names)
    if http is not None:
        method, url = http
        body["Type"] = "L7"
        body["event_type"] = {"type": 129}
        request = {"method": method, "url": url, "protocol": "HTTP/1.1"}
        body["l7"] = {"type": "REQUEST", "latency_ns": "0", "http": request}
    if drop_reason:
        body["drop_reason_desc"] = drop_reason
        body["event_type"] = {"type": 1, "sub_type": 133}
    return {"flow": body, "node_name": "node-1", "time": time}


def write(path: Path, flows: Iterable[dict[str, Any]]) -> Path:
    """Write the flows as JSON lines."""
    path.write_text("".join(json.dumps(f) + "\n" for f in flows))
    return path


def batches(path: Path) -> list[pa.RecordBatch]:
    """Import a file into record batches without a store."""
    with InputFile(str(path)) as input_file:
        return list(HubbleFileSource(input_file).batches())
