"""One workload manifest → a `Workload`: the pod labels and named container ports that named-port rules need.

Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs (through `jobTemplate`)
are read. Only what synth reads is checked, as strictly as the API server checks it: the name and
namespace, the pod (template) labels, and the `ports` of every container and init container (`name`,
`containerPort`, `protocol` defaulting to TCP; `hostPort` and `hostIP` are allowed and not read).
Anything else in a manifest (images, probes, a typo in `replicas`) is not synth's business and is
never an error. A manifest without a pod template (a kustomize patch) comes back without labels:
no pod can be matched to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synth.base.errors import PolicyError
from synth.core.model import ContainerPort, Workload, WorkloadSource
from synth.policy.fields import (
    PROTOCOLS,
    Where,
    check_keys,
    check_label_key,
    check_label_value,
    describe,
    is_port_name,
    list_field,
    mapping_field,
)

__all__ = ["WORKLOAD_KINDS", "is_workload", "workload_from_object"]

# Kind → the API groups that serve it (`""` is the core group, apiVersion `v1`); `extensions` for old manifests.
WORKLOAD_KINDS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("",),
    "Deployment": ("apps", "extensions"),
    "StatefulSet": ("apps",),
    "DaemonSet": ("apps", "extensions"),
    "ReplicaSet": ("apps", "extensions"),
    "Job": ("batch",),
    "CronJob": ("batch",),
}
_PORT_FIELDS = ("name", "containerPort", "protocol", "hostPort", "hostIP")
_CONTAINER_LISTS = ("initContainers", "containers")  # init containers too: sidecars serve ports


def is_workload(kind: str, api_version: str) -> bool:
    """Whether `apiVersion`/`kind` is one of the workload kinds read for named ports."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return group in WORKLOAD_KINDS.get(kind, ())


def workload_from_object(
    obj: Mapping[str, Any], origin: str, default_namespace: str = "default", source: WorkloadSource = "manifests"
) -> Workload:
    """Validate the parts of one workload manifest synth reads and convert them.

    Raises `PolicyError` naming `origin`, the object and the field path of the first problem.
    """
    kind = str(obj.get("kind") or "")
    meta = obj.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise PolicyError(f"{origin}: metadata: must be a mapping, got {describe(meta)}")
    name = meta.get("name")
    namespace = meta.get("namespace") or default_namespace
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{origin} ({kind}): metadata.name: required")
    if not isinstance(namespace, str):
        raise PolicyError(f"{origin} ({kind} {name}): metadata.namespace: must be a string, got {describe(namespace)}")
    w = Where(origin, f"{kind} {namespace}/{name}")
    found = _pod_template(obj, kind, w)
    if found is None:
        return Workload(kind, namespace, name, (), (), source, origin)
    template, path = found
    template_meta = mapping_field(template.get("metadata"), f"{path}metadata", w)
    labels = _labels(template_meta.get("labels"), f"{path}metadata.labels", w)
    pod_spec = mapping_field(template.get("spec"), f"{path}spec", w)
    return Workload(kind, namespace, name, labels, _named_ports(pod_spec, f"{path}spec", w), source, origin)


def _pod_template(obj: Mapping[str, Any], kind: str, w: Where) -> tuple[Mapping[str, Any], str] | None:
    """The pod (template) and its field path prefix; None when the manifest has none."""
    if kind == "Pod":
        return obj, ""
    steps = ("spec", "jobTemplate", "spec", "template") if kind == "CronJob" else ("spec", "template")
    current: Mapping[str, Any] = obj
    path = ""
    for step in steps:
        value = current.get(step)
        if value is None:
            return None
        path = f"{path}{step}"
        current = mapping_field(value, path, w)
        path += "."
    return current, path


def _labels(value: object, path: str, w: Where) -> tuple[tuple[str, str], ...]:
    labels = mapping_field(value, path, w)
    for key, label in labels.items():
        check_label_key(key, path, w)
        check_label_value(label, f"{path}.{key}", w)
    return tuple(sorted(labels.items()))


def _named_ports(pod_spec: Mapping[str, Any], path: str, w: Where) -> tuple[ContainerPort, ...]:
    found: set[ContainerPort] = set()
    for field in _CONTAINER_LISTS:
        containers_path = f"{path}.{field}"
        for i, container in enumerate(list_field(pod_spec.get(field), containers_path, w)):
            container_path = f"{containers_path}[{i}]"
            body = mapping_field(container, container_path, w)
            names: set[str] = set()
            for j, item in enumerate(list_field(body.get("ports"), f"{container_path}.ports", w)):
                port = _port(item, f"{container_path}.ports[{j}]", w)
                if port is None:
                    continue
                if port.name in names:  # the API server refuses this within one container
                    w.fail(f"{container_path}.ports[{j}].name", f"duplicate port name {port.name!r}")
                names.add(port.name)
                found.add(port)
    return tuple(sorted(found, key=lambda p: (p.name, p.port, p.protocol)))


def _port(value: object, path: str, w: Where) -> ContainerPort | None:
    """One `ports` entry, checked whole; None for an unnamed port (no rule can name it)."""
    body = mapping_field(value, path, w)
    check_keys(body, _PORT_FIELDS, path, w)
    number = body.get("containerPort")
    if number is None:
        w.fail(f"{path}.containerPort", "required")
    if isinstance(number, bool) or not isinstance(number, int):
        w.fail(f"{path}.containerPort", f"must be a number, got {describe(number)}")
    if not 1 <= number <= 65535:
        w.fail(f"{path}.containerPort", f"{number} is not between 1 and 65535")
    protocol = body.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        w.fail(f"{path}.protocol", f"unknown protocol {protocol!r} (use TCP, UDP or SCTP)")
    name = body.get("name")
    if name is None or name == "":
        return None
    if not isinstance(name, str) or not is_port_name(name):
        w.fail(f"{path}.name", f"{name!r} is not a valid port name (at most 15 of a-z, 0-9 and -, with a letter)")
    return ContainerPort(name, number, protocol)
