"""Calico Open Source flows: Goldmane emitter NDJSON and whisker-backend `FlowResponse` JSON.

Goldmane flows are aggregated across nodes and 15-second buckets: there are no IPs and no source
ports, and names are the aggregated ones (`nginx-86c57db685-*`, a NetworkSet name, `pvt`/`pub`).
The emitter writes Go `encoding/json` of the proto structs: `"Key"` nesting, snake_case keys,
enums as integers, zero values omitted. protojson output (lowerCamel keys, enum names, 64-bit
integers as strings, as `grpcurl` prints it; also `{"flow": ...}` and `{"flows": [...]}` wrappers)
is accepted too. Counts: `num_connections_live` (Felix `num_flows`) → count, started/completed kept.

whisker-backend (`/whisker-backend/flows`) answers `{"items": [FlowResponse...]}` or, when watching,
server-sent events `data: {FlowResponse}`. A FlowResponse has RFC 3339 times, `"Allow"`/`"Src"`
strings, labels as one `" | "`-joined string, `PUBLIC NETWORK`/`PRIVATE NETWORK` for `pub`/`pvt`,
and no endpoint type, Service or connection count: an endpoint with a namespace is taken as a pod
(a namespaced NetworkSet cannot be told apart), one without as unknown, each item counts 1.

Policy hits are rendered to Felix's string form with the OSS spelling
(`<index>|<tier>|knp:<ns>/<name>|<action>|<rule>`), prefixed by their set (`enforced:`, `pending:`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from synth.sources.calico.records import (
    NS_PER_S,
    BadField,
    Endpoint,
    append_row,
    count,
    endpoint,
    epoch_seconds_ns,
    integer,
    labels,
    name_field,
    port,
    protocol,
    record_object,
    service,
    show,
)
from synth.sources.columns import FlowColumns

_ACTIONS = {"ActionUnspecified": 0, "Allow": 1, "Deny": 2, "Pass": 3}
_ACTION_NAMES = {number: name.lower() for name, number in _ACTIONS.items() if number}
# Pass is a tier's decision, never a flow's: a flow keyed Pass (or unspecified) is unjudged.
_VERDICTS = {0: "unknown", 1: "forwarded", 2: "dropped", 3: "unknown"}
_REPORTERS = {"ReporterUnspecified": 0, "Src": 1, "Dst": 2}
_DIRECTIONS = {0: "unknown", 1: "egress", 2: "ingress"}
_TYPES = {"EndpointTypeUnspecified": 0, "WorkloadEndpoint": 1, "HostEndpoint": 2, "NetworkSet": 3, "Network": 4}
_TYPE_CODES = {0: None, 1: "wep", 2: "hep", 3: "ns", 4: "net"}
_KINDS = {
    "KindUnspecified": 0,
    "CalicoNetworkPolicy": 1,
    "GlobalNetworkPolicy": 2,
    "StagedNetworkPolicy": 3,
    "StagedGlobalNetworkPolicy": 4,
    "StagedKubernetesNetworkPolicy": 5,
    "NetworkPolicy": 6,
    "AdminNetworkPolicy": 7,
    "BaselineAdminNetworkPolicy": 8,
    "Profile": 9,
    "EndOfTier": 10,
    "ClusterNetworkPolicy": 11,
}
_END_OF_TIER = 10
_PROFILE = 9
# Kind → (prefix of the policy part, namespaced?), as Felix and Goldmane spell it.
_POLICY_PARTS = {
    1: ("np", True),
    2: ("gnp", False),
    3: ("snp", True),
    4: ("sgnp", False),
    5: ("sknp", True),
    6: ("knp", True),
    7: ("kanp", False),
    8: ("kbanp", False),
    9: ("pro", False),
    11: ("kcnp", False),
}
# (set, key, protojson key) of a PolicyTrace: Goldmane's proto names, whisker-backend's JSON names.
_GOLDMANE_SETS = (
    ("enforced", "enforced_policies", "enforcedPolicies"),
    ("pending", "pending_policies", "pendingPolicies"),
)
_WHISKER_SETS = (("enforced", "enforced", "enforced"), ("pending", "pending", "pending"))
_NETWORK_NAMES = frozenset({"PUBLIC NETWORK", "PRIVATE NETWORK", "pub", "pvt"})
_FRACTION = re.compile(r"\.(\d{6})\d+")


def _get(d: dict[str, Any], snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def _enum(value: object, names: dict[str, int], valid: dict[int, Any], field: str) -> int:
    """An enum given by number (Go encoding/json) or by name (protojson, whisker); absent is 0."""
    if value is None:
        return 0
    if type(value) is int and value in valid:
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    choices = ", ".join(f"{number} ({name})" for name, number in names.items() if number in valid)
    raise BadField(f"field {field}: expected one of {choices}, got {show(value)}")


# ------------------------------------------------------------------------------------------------ Goldmane


def goldmane_flows(value: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """(prefix, Flow) for a Flow, a `{"flow": Flow}` FlowResult or a `{"flows": [...]}` FlowListResult."""
    if "Key" in value:
        yield "", value
    elif isinstance(value.get("flow"), dict):
        yield "", value["flow"]
    elif "flows" in value:
        flows = value["flows"]
        if not isinstance(flows, list):
            yield "", BadField(f"field flows: expected a list, got {show(flows)}")
            return
        for position, result in enumerate(flows):
            flow = result.get("flow", result) if isinstance(result, dict) else result
            yield (
                f"flows[{position}]: ",
                flow if isinstance(flow, dict) else BadField(f"expected an object, got {show(flow)}"),
            )
    else:
        yield "", BadField("field Key: missing")


def append_goldmane(cols: FlowColumns, flow: dict[str, Any]) -> None:
    """Validate one Goldmane Flow and append it; raises BadField before touching any column."""
    key = record_object(flow.get("Key"), "Key")
    time_ns = epoch_seconds_ns(_get(flow, "start_time", "startTime"), "start_time")
    action = _enum(key.get("action"), _ACTIONS, _VERDICTS, "Key.action")
    reporter = _enum(key.get("reporter"), _REPORTERS, _DIRECTIONS, "Key.reporter")
    proto = protocol(key.get("proto"), "Key.proto")
    src = _goldmane_endpoint(key, flow, "source", "Source")
    dst = _goldmane_endpoint(key, flow, "dest", "Dest")
    dst_port = port(_get(key, "dest_port", "destPort"), "Key.dest_port")
    live = count(_get(flow, "num_connections_live", "numConnectionsLive"), "num_connections_live")
    started = count(_get(flow, "num_connections_started", "numConnectionsStarted"), "num_connections_started")
    completed = count(_get(flow, "num_connections_completed", "numConnectionsCompleted"), "num_connections_completed")
    dst_service = service(
        name_field(_get(key, "dest_service_namespace", "destServiceNamespace"), "Key.dest_service_namespace"),
        name_field(_get(key, "dest_service_name", "destServiceName"), "Key.dest_service_name"),
    )
    service_port = port(_get(key, "dest_service_port", "destServicePort"), "Key.dest_service_port")
    policies = _trace(key.get("policies"), "Key.policies", _GOLDMANE_SETS)
    append_row(
        cols,
        time_ns=time_ns,
        flows=live or started or 1,
        verdict=_VERDICTS[action],
        direction=_DIRECTIONS[reporter],
        proto=proto,
        src_port=None,
        dst_port=dst_port,
        src=src,
        dst=dst,
        names=(),
        dst_service=dst_service,
        dst_service_port=service_port,
        node=None,
        policies=policies,
        started=started,
        completed=completed,
    )


def _goldmane_endpoint(key: dict[str, Any], flow: dict[str, Any], side: str, camel: str) -> Endpoint:
    low = camel.lower()
    type_code = _enum(_get(key, f"{side}_type", f"{low}Type"), _TYPES, _TYPE_CODES, f"Key.{side}_type")
    name = name_field(_get(key, f"{side}_name", f"{low}Name"), f"Key.{side}_name")
    namespace = name_field(_get(key, f"{side}_namespace", f"{low}Namespace"), f"Key.{side}_namespace")
    pairs = labels(_get(flow, f"{side}_labels", f"{low}Labels"), f"{side}_labels")
    return endpoint(_TYPE_CODES[type_code], None, name, namespace, None, pairs)


def _trace(value: object, field: str, sets: tuple[tuple[str, str, str], ...]) -> list[str]:
    """`enforced:<hit>` and `pending:<hit>` strings of a PolicyTrace (Goldmane or whisker spelling)."""
    if value is None:
        return []
    trace = record_object(value, field)
    found: list[str] = []
    for set_name, *keys in sets:
        hits = _get(trace, *keys)
        if hits is None:
            continue
        if not isinstance(hits, list):
            raise BadField(f"field {field}.{keys[0]}: expected a list of policy hits, got {show(hits)}")
        rendered = [hit_string(hit, f"{field}.{keys[0]}[{i}]") for i, hit in enumerate(hits)]
        found.extend(f"{set_name}:{text}" for _, text in sorted(rendered))
    return found


def hit_string(value: object, field: str) -> tuple[int, str]:
    """(index, `<index>|<tier>|<kind>:[ns/]name|<action>|<rule>`) for one PolicyHit object."""
    hit = record_object(value, field)
    kind = _enum(hit.get("kind"), _KINDS, {**dict.fromkeys(_POLICY_PARTS), _END_OF_TIER: None}, f"{field}.kind")
    if kind == 0:
        raise BadField(f"field {field}.kind: missing")
    action = _enum(hit.get("action"), _ACTIONS, _ACTION_NAMES, f"{field}.action")
    index = integer(_get(hit, "policy_index", "policyIndex"), f"{field}.policy_index", default=0)
    rule = integer(_get(hit, "rule_index", "ruleIndex"), f"{field}.rule_index", default=0)
    tier = hit.get("tier") or ""
    named = hit
    if kind == _END_OF_TIER:
        named = record_object(hit.get("trigger"), f"{field}.trigger")
        kind = _enum(named.get("kind"), _KINDS, _POLICY_PARTS, f"{field}.trigger.kind")
        if kind == 0:
            raise BadField(f"field {field}.trigger.kind: missing")
    if kind == _PROFILE:
        tier = "__PROFILE__"
    prefix, namespaced = _POLICY_PARTS[kind]
    name, namespace = named.get("name") or "", named.get("namespace") or ""
    if not isinstance(name, str) or not isinstance(namespace, str) or not isinstance(tier, str):
        raise BadField(f"field {field}: expected string name, namespace and tier, got {show(hit)}")
    part = f"{prefix}:{namespace}/{name}" if namespaced else f"{prefix}:{name}"
    assert index is not None and rule is not None
    return index, f"{index}|{tier}|{part}|{_ACTION_NAMES.get(action, 'unspecified')}|{rule}"


# ------------------------------------------------------------------------------------------------ whisker


def whisker_items(value: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """(prefix, FlowResponse) for `{"items": [...]}` list answers and single (SSE) FlowResponses."""
    if "items" not in value:
        yield "", value
        return
    items = value["items"]
    if items is None:
        return
    if not isinstance(items, list):
        yield "", BadField(f"field items: expected a list, got {show(items)}")
        return
    for position, item in enumerate(items):
        yield (
            f"items[{position}]: ",
            item if isinstance(item, dict) else BadField(f"expected an object, got {show(item)}"),
        )


def append_whisker(cols: FlowColumns, item: dict[str, Any]) -> None:
    """Validate one whisker-backend FlowResponse and append it; BadField before touching any column."""
    time_ns = rfc3339_ns(item.get("start_time"), "start_time")
    action = _enum(item.get("action"), _ACTIONS, _VERDICTS, "action")
    reporter = _enum(item.get("reporter"), _REPORTERS, _DIRECTIONS, "reporter")
    proto = protocol(item.get("protocol"), "protocol")
    src = _whisker_endpoint(item, "source")
    dst = _whisker_endpoint(item, "dest")
    dst_port = port(item.get("dest_port"), "dest_port")
    policies = _trace(item.get("policies"), "policies", _WHISKER_SETS)
    append_row(
        cols,
        time_ns=time_ns,
        flows=1,
        verdict=_VERDICTS[action],
        direction=_DIRECTIONS[reporter],
        proto=proto,
        src_port=None,
        dst_port=dst_port,
        src=src,
        dst=dst,
        names=(),
        dst_service=None,
        dst_service_port=None,
        node=None,
        policies=policies,
        started=None,
        completed=None,
    )


def _whisker_endpoint(item: dict[str, Any], side: str) -> Endpoint:
    raw_name = item.get(f"{side}_name")
    name = name_field(raw_name, f"{side}_name")
    namespace = name_field(item.get(f"{side}_namespace"), f"{side}_namespace")
    pairs = labels(item.get(f"{side}_labels"), f"{side}_labels")
    if raw_name in _NETWORK_NAMES:
        return endpoint("net", None, None, None, None, ())
    if namespace:
        return endpoint("wep", None, name, namespace, None, pairs)
    return Endpoint("unknown")


def rfc3339_ns(value: object, field: str) -> int:
    """An RFC 3339 time (Go's time.Time JSON) to nanoseconds; Unix seconds are accepted too."""
    if value is None:
        raise BadField(f"field {field}: missing")
    if not isinstance(value, str) or value.isdigit():
        return epoch_seconds_ns(value, field)
    text = _FRACTION.sub(r".\1", value.replace("z", "Z"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadField(f"field {field}: not an RFC 3339 timestamp: {show(value)}") from None
    if moment.tzinfo is None:
        raise BadField(f"field {field}: timestamp without a time zone: {show(value)}")
    return int(moment.timestamp()) * NS_PER_S + moment.microsecond * 1000


def looks_like_whisker(value: dict[str, Any]) -> bool:
    """A whisker list answer or FlowResponse (it says `protocol` where flows.log says `proto`)."""
    return "items" in value or ("protocol" in value and "proto" not in value and "source_name" in value)


def looks_like_goldmane(value: dict[str, Any]) -> bool:
    """A Goldmane Flow, FlowResult or FlowListResult."""
    if "Key" in value:
        return True
    flow = value.get("flow")
    if isinstance(flow, dict) and "Key" in flow:
        return True
    flows = value.get("flows")
    return isinstance(flows, list) and (not flows or isinstance(flows[0], dict))
