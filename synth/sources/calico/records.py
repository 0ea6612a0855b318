"""What every Calico format shares: placeholders, labels, protocols, endpoints and the row they make.

Calico writes placeholders where a value was aggregated away or not collected: `-` (not included),
`*` (aggregated), `pvt`/`pub` (an address bucket instead of an IP), and null. None of them ever
becomes a label, name, namespace or address here. Endpoint types map onto FLOW_SCHEMA kinds:

| Calico type | kind    | kept                                                                     |
|-------------|---------|--------------------------------------------------------------------------|
| `wep`       | `pod`   | pod name, or the aggregated name (`nginx-86c57db685-*`), labels, IP      |
| `hep`       | `host`  | IP when present, `HostEndpoint/<name>` as workload                       |
| `ns`        | `world` | IP when present (level 0/1), `NetworkSet/<name>` or `GlobalNetworkSet/<name>` |
|             |         | as workload, the set's namespace, the set's labels                       |
| `net`       | `world` | IP when present; with `pvt`/`pub` only, no address at all                |

So a world endpoint without an IP is exactly one whose address Calico aggregated away; generation
reports it (see `core.enforceability`). Calico records describe connections from the initiator's point of
view, so `is_reply` is always false, and `reporter` src/dst/fwd is the direction egress/ingress/unknown.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson

from synth.sources.columns import (
    DIRECTION_INDEX,
    KIND_INDEX,
    PROTOCOL_INDEX,
    SOURCE_INDEX,
    VERDICT_INDEX,
    FlowColumns,
    Labels,
)

NS_PER_S = 1_000_000_000
# Values that stand for "no value": never a label, name, namespace or address.
PLACEHOLDERS = frozenset({"", "-", "*", "pvt", "pub", "null", "PUBLIC NETWORK", "PRIVATE NETWORK", "Global"})
_DROPPED_LABEL_PREFIX = "projectcalico.org/"
_PROTOCOL_BY_NAME = {
    "tcp": "TCP",
    "udp": "UDP",
    "sctp": "SCTP",
    "icmp": "ICMPv4",
    "icmpv4": "ICMPv4",
    "icmp6": "ICMPv6",
    "icmpv6": "ICMPv6",
    # Protocols Felix names but NetworkPolicy cannot express.
    "ipip": "unknown",
    "esp": "unknown",
    "gre": "unknown",
    "igmp": "unknown",
}
_PROTOCOL_BY_NUMBER = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMPv4", 58: "ICMPv6"}
_TYPES = ("wep", "hep", "ns", "net")
_KIND_BY_TYPE = {"wep": "pod", "hep": "host", "ns": "world", "net": "world"}


class BadField(ValueError):
    """A field of a record has the wrong type or value; the message names the field."""


def show(value: object) -> str:
    """A value as JSON text (`"x"`, `5`, `null`), shortened, for messages."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def real(value: object) -> str | None:
    """The string, or None when it is missing or a placeholder."""
    if value is None or (isinstance(value, str) and value in PLACEHOLDERS):
        return None
    if isinstance(value, str):
        return value
    raise TypeError


def name_field(value: object, field: str) -> str | None:
    """A name, namespace or label-free string field; placeholders become None."""
    try:
        return real(value)
    except TypeError:
        raise BadField(f"field {field}: expected a string, got {show(value)}") from None


def integer(value: object, field: str, *, default: int | None = None) -> int | None:
    """An integer that may arrive as a number or a decimal string (64-bit values in JSON)."""
    if value is None:
        return default
    if type(value) is int:
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise BadField(f"field {field}: expected an integer, got {show(value)}")


def count(value: object, field: str) -> int | None:
    """A non-negative counter, or None when absent."""
    number = integer(value, field)
    if number is not None and number < 0:
        raise BadField(f"field {field}: expected a non-negative integer, got {show(value)}")
    return number


def port(value: object, field: str) -> int | None:
    """A port; null and 0 (ICMP, aggregated away) are None."""
    number = integer(value, field)
    if number is None or number == 0:
        return None
    if not 0 < number <= 65535:
        raise BadField(f"field {field}: expected a port number (0-65535), got {show(value)}")
    return number


def epoch_seconds_ns(value: object, field: str) -> int:
    """Unix seconds (a number or a decimal string) to nanoseconds."""
    if value is None:
        raise BadField(f"field {field}: missing")
    if type(value) is float and value > 0:
        return int(value * NS_PER_S)
    if type(value) is int and value > 0:
        return value * NS_PER_S
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value) * NS_PER_S
    raise BadField(f"field {field}: expected Unix seconds, got {show(value)}")


def protocol(value: object, field: str) -> str:
    """Calico's protocol name or number to FLOW_SCHEMA's; unknown names are bad input."""
    if type(value) is int:
        if 0 <= value <= 255:
            return _PROTOCOL_BY_NUMBER.get(value, "unknown")
    elif isinstance(value, str):
        found = _PROTOCOL_BY_NAME.get(value.lower())
        if found is not None:
            return found
        if value.isdigit() and int(value) <= 255:
            return _PROTOCOL_BY_NUMBER.get(int(value), "unknown")
        if value in ("", "-"):
            raise BadField(f"field {field}: missing")
        raise BadField(f"field {field}: unknown protocol {show(value)}")
    elif value is None:
        raise BadField(f"field {field}: missing")
    raise BadField(f"field {field}: expected a protocol name or number, got {show(value)}")


def endpoint_type(value: object, field: str) -> str:
    """`wep`, `hep`, `ns` or `net`."""
    if isinstance(value, str) and value in _KIND_BY_TYPE:
        return value
    if value is None:
        raise BadField(f"field {field}: missing")
    raise BadField(f'field {field}: expected "wep", "hep", "ns" or "net", got {show(value)}')


@lru_cache(maxsize=65536)
def ip_address(value: str) -> str | None:
    """The canonical text of an IP address, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def address(value: object, field: str) -> str | None:
    """An IP address; null and placeholders are None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadField(f"field {field}: expected an IP address, got {show(value)}")
    if value in PLACEHOLDERS:
        return None
    canonical = ip_address(value)
    if canonical is None:
        raise BadField(f"field {field}: not an IP address: {show(value)}")
    return canonical


@lru_cache(maxsize=65536)
def _label_pairs(entries: tuple[str, ...]) -> Labels:
    pairs: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.strip().partition("=")
        key = key.strip()
        if not key or key in PLACEHOLDERS or key.startswith(_DROPPED_LABEL_PREFIX):
            continue
        pairs[key] = value.strip()
    return tuple(sorted(pairs.items()))


def labels(value: object, field: str) -> Labels:
    """Labels from any Calico spelling, key-sorted, `projectcalico.org/` keys dropped.

    Accepts `{"labels": ["k=v", ...]}` (flows.log, Elasticsearch), a list of `k=v` (Goldmane),
    a `{k: v}` map, a `" | "`-joined string (Whisker), and null or `-` for none.
    """
    if value is None:
        return ()
    if isinstance(value, dict):
        if "labels" in value:
            inner = value["labels"]
            if inner is None or isinstance(inner, list):
                return labels(inner, f"{field}.labels")
            raise BadField(f'field {field}.labels: expected a list of "key=value" strings, got {show(inner)}')
        if all(isinstance(v, str) for v in value.values()):
            return _label_pairs(tuple(f"{k}={v}" for k, v in value.items()))
    elif isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return _label_pairs(tuple(value))
    elif isinstance(value, str):
        if value.strip() in PLACEHOLDERS:
            return ()
        return _label_pairs(tuple(value.split(" | ")))
    raise BadField(
        f'field {field}: expected {{"labels": [...]}}, a list of "key=value", a map or a " | "-joined string, '
        f"got {show(value)}"
    )


def strings(value: object, field: str) -> tuple[str, ...]:
    """A list of strings with placeholders dropped; null is empty."""
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v not in PLACEHOLDERS)
    raise BadField(f"field {field}: expected a list of strings, got {show(value)}")


class Endpoint:
    """One side of a Calico record in FLOW_SCHEMA terms."""

    __slots__ = ("ip", "kind", "labels", "namespace", "pod", "workload")

    def __init__(
        self,
        kind: str,
        ip: str | None = None,
        namespace: str | None = None,
        pod: str | None = None,
        workload: str | None = None,
        labels: Labels = (),
    ) -> None:
        self.kind = kind
        self.ip = ip
        self.namespace = namespace
        self.pod = pod
        self.workload = workload
        self.labels = labels


def endpoint(
    calico_type: str | None,
    name: str | None,
    name_aggr: str | None,
    namespace: str | None,
    ip: str | None,
    pairs: Labels,
) -> Endpoint:
    """An endpoint from Calico's type and (placeholder-free) name, aggregated name, namespace, IP, labels."""
    if calico_type is None:
        return Endpoint("unknown", ip, namespace, None, None, ())
    kind = _KIND_BY_TYPE[calico_type]
    if calico_type == "wep":
        return Endpoint(kind, ip, namespace, name or name_aggr, None, pairs)
    if calico_type == "hep":
        host = name or name_aggr
        return Endpoint(kind, ip, None, None, f"HostEndpoint/{host}" if host else None, pairs)
    if calico_type == "ns":
        set_name = name or name_aggr
        workload = None
        if set_name:
            workload = f"NetworkSet/{set_name}" if namespace else f"GlobalNetworkSet/{set_name}"
        return Endpoint(kind, ip, namespace, None, workload, pairs)
    return Endpoint(kind, ip)


def service(namespace: str | None, name: str | None) -> str | None:
    """`namespace/name` of the addressed Service, or None."""
    if not name:
        return None
    return f"{namespace or ''}/{name}"


def append_row(
    cols: FlowColumns,
    *,
    time_ns: int,
    flows: int,
    verdict: str,
    direction: str,
    proto: str,
    src_port: int | None,
    dst_port: int | None,
    src: Endpoint,
    dst: Endpoint,
    names: Iterable[str],
    dst_service: str | None,
    dst_service_port: int | None,
    node: str | None,
    policies: Iterable[str],
    started: int | None,
    completed: int | None,
) -> None:
    """Append one validated Calico record as a FLOW_SCHEMA row."""
    cols.time.append(time_ns)
    cols.count.append(flows)
    cols.source.append(SOURCE_INDEX["calico"])
    cols.verdict.append(VERDICT_INDEX[verdict])
    cols.drop_reason.append("POLICY_DENIED" if verdict == "dropped" else None)
    cols.direction.append(DIRECTION_INDEX[direction])
    cols.is_reply.append(False)
    cols.protocol.append(PROTOCOL_INDEX[proto])
    cols.src_port.append(src_port)
    cols.dst_port.append(dst_port)
    cols.src_ip.append(src.ip)
    cols.src_kind.append(KIND_INDEX[src.kind])
    cols.src_namespace.append(src.namespace)
    cols.src_pod.append(src.pod)
    cols.src_workload.append(src.workload)
    cols.src_labels.append(src.labels)
    cols.src_ns_labels.append(())
    cols.dst_ip.append(dst.ip)
    cols.dst_kind.append(KIND_INDEX[dst.kind])
    cols.dst_namespace.append(dst.namespace)
    cols.dst_pod.append(dst.pod)
    cols.dst_workload.append(dst.workload)
    cols.dst_labels.append(dst.labels)
    cols.dst_ns_labels.append(())
    cols.dst_names.append(names)
    cols.dns_query.append(None)
    cols.dns_answers.append(())
    cols.http_method.append(None)
    cols.http_path.append(None)
    cols.dst_service.append(dst_service)
    cols.dst_service_port.append(dst_service_port)
    cols.node.append(node)
    cols.policies.append(policies)
    cols.flows_started.append(started)
    cols.flows_completed.append(completed)


def record_object(value: object, field: str) -> dict[str, Any]:
    """A JSON object field, or BadField."""
    if isinstance(value, dict):
        return value
    if value is None:
        raise BadField(f"field {field}: missing")
    raise BadField(f"field {field}: expected an object, got {show(value)}")
