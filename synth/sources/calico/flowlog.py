"""Calico Enterprise/Cloud flow logs: the node's `flows.log` and Elasticsearch exports of it.

A `flows.log` line and an Elasticsearch `_source` document of `tigera_secure_ee_flows*` are the
same record (Elasticsearch adds `host`, `@timestamp` and sometimes `cluster`), so one mapping serves
both. Elasticsearch answers are unwrapped here: a `_search` or scroll response (`hits.hits[]`), a
single hit (`{"_index": ..., "_source": {...}}`, as `elasticdump` writes them) or a bare document.
An error response (`{"error": ..., "status": 4xx}`) is one clear error, never a skipped record.

Mapping (see `calico.records` for endpoints and placeholders): `start_time` → time, `num_flows` →
count (a record exists only because traffic was seen, so never less than 1), `num_flows_started` /
`num_flows_completed` kept, `reporter` src/dst/fwd → direction egress/ingress/unknown, `action`
allow/deny → forwarded/dropped (`POLICY_DENIED`), `dest_port` is the backend port,
`dest_service_namespace`/`dest_service_name` → `dst_service`, `dest_service_port_num` →
`dst_service_port`, `dest_domains` → `dst_names`, and the policy strings of `policies` kept as
`<set>:<index>|<tier>|<policy>|<action>|<rule>` (set: enforced, pending, transit, all), in hit order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from synth.base.errors import InputError
from synth.sources.calico.records import (
    BadField,
    Endpoint,
    address,
    append_row,
    count,
    endpoint,
    endpoint_type,
    epoch_seconds_ns,
    labels,
    name_field,
    port,
    protocol,
    service,
    show,
    strings,
)
from synth.sources.columns import FlowColumns

_VERDICTS = {"allow": "forwarded", "deny": "dropped"}
_DIRECTIONS = {"src": "egress", "dst": "ingress", "fwd": "unknown"}
_POLICY_SETS = (
    ("enforced_policies", "enforced"),
    ("pending_policies", "pending"),
    ("transit_policies", "transit"),
    ("all_policies", "all"),
)
# Keys that only a flows.log record (or its Elasticsearch copy) has.
FLOWLOG_KEYS = frozenset({"source_name_aggr", "dest_name_aggr", "num_flows", "source_type", "dest_type", "proto"})
_CACHE_LIMIT = 1 << 16
_ENDPOINTS: dict[tuple[Any, ...], Endpoint] = {}
_POLICIES: dict[tuple[Any, ...], tuple[str, ...]] = {}
_SIDES = {
    side: (f"{side}_type", f"{side}_name", f"{side}_name_aggr", f"{side}_namespace", f"{side}_ip", f"{side}_labels")
    for side in ("source", "dest")
}


def append_document(cols: FlowColumns, doc: dict[str, Any]) -> None:
    """Validate one flows.log record (or Elasticsearch `_source`) and append it; BadField first."""
    get = doc.get
    time_ns = epoch_seconds_ns(get("start_time"), "start_time")
    verdict = _enum(get("action"), _VERDICTS, "action", '"allow" or "deny"')
    direction = _enum(get("reporter"), _DIRECTIONS, "reporter", '"src", "dst" or "fwd"')
    proto = protocol(get("proto"), "proto")
    src = _endpoint(doc, "source")
    dst = _endpoint(doc, "dest")
    src_port = port(get("source_port"), "source_port")
    dst_port = port(get("dest_port"), "dest_port")
    flows = count(get("num_flows"), "num_flows") or 1
    started = count(get("num_flows_started"), "num_flows_started")
    completed = count(get("num_flows_completed"), "num_flows_completed")
    names = strings(get("dest_domains"), "dest_domains")
    dst_service = service(
        name_field(get("dest_service_namespace"), "dest_service_namespace"),
        name_field(get("dest_service_name"), "dest_service_name"),
    )
    service_port = port(get("dest_service_port_num"), "dest_service_port_num")
    node = name_field(get("host"), "host")
    policies = policy_strings(get("policies"))
    append_row(
        cols,
        time_ns=time_ns,
        flows=flows,
        verdict=verdict,
        direction=direction,
        proto=proto,
        src_port=src_port,
        dst_port=dst_port,
        src=src,
        dst=dst,
        names=names,
        dst_service=dst_service,
        dst_service_port=service_port,
        node=node,
        policies=policies,
        started=started,
        completed=completed,
    )


def _enum(value: object, mapping: dict[str, str], field: str, expected: str) -> str:
    if isinstance(value, str):
        found = mapping.get(value) or mapping.get(value.lower())
        if found is not None:
            return found
    if value is None:
        raise BadField(f"field {field}: missing")
    raise BadField(f"field {field}: expected {expected}, got {show(value)}")


def _endpoint(doc: dict[str, Any], side: str) -> Endpoint:
    """The endpoint of one side; cached, since a node's records name the same endpoints over and over."""
    type_key, name_key, aggr_key, ns_key, ip_key, labels_key = _SIDES[side]
    raw_labels = doc.get(labels_key)
    try:
        key = (
            doc.get(type_key),
            doc.get(name_key),
            doc.get(aggr_key),
            doc.get(ns_key),
            doc.get(ip_key),
            _labels_key(raw_labels),
        )
        cached = _ENDPOINTS.get(key)
    except (TypeError, KeyError):  # unhashable or odd values: validate them the slow way
        return _parse_endpoint(doc, side)
    if cached is None:
        cached = _parse_endpoint(doc, side)
        if len(_ENDPOINTS) >= _CACHE_LIMIT:
            _ENDPOINTS.clear()
        _ENDPOINTS[key] = cached
    return cached


def _labels_key(raw: object) -> object:
    """A hashable stand-in for a labels value that no differently-typed value can equal."""
    if type(raw) is dict and len(raw) == 1:
        inner = raw["labels"]
        return ("labels", tuple(inner)) if type(inner) is list else ("labels", inner)
    return raw


def _parse_endpoint(doc: dict[str, Any], side: str) -> Endpoint:
    type_key, name_key, aggr_key, ns_key, ip_key, labels_key = _SIDES[side]
    calico_type = endpoint_type(doc.get(type_key), type_key)
    return endpoint(
        calico_type,
        name_field(doc.get(name_key), name_key),
        name_field(doc.get(aggr_key), aggr_key),
        name_field(doc.get(ns_key), ns_key),
        address(doc.get(ip_key), ip_key),
        labels(doc.get(labels_key), labels_key),
    )


def policy_strings(value: object) -> tuple[str, ...]:
    """`<set>:<hit>` for every policy hit of a `policies` object, sets in a fixed order, hits by index."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise BadField(f"field policies: expected an object of policy lists, got {show(value)}")
    lists = [value.get(name) for name, _ in _POLICY_SETS]
    key: tuple[Any, ...] | None = None
    cached = None
    if all(v is None or type(v) is list for v in lists):
        try:
            key = tuple(None if v is None else tuple(v) for v in lists)
            cached = _POLICIES.get(key)
        except TypeError:  # unhashable entries: let `strings` say what is wrong
            key = None
    if cached is not None:
        return cached
    found: list[str] = []
    for name, set_name in _POLICY_SETS:
        hits = strings(value.get(name), f"policies.{name}")
        found.extend(f"{set_name}:{hit}" for hit in sorted(hits, key=_hit_order))
    result = tuple(found)
    if key is not None:
        if len(_POLICIES) >= _CACHE_LIMIT:
            _POLICIES.clear()
        _POLICIES[key] = result
    return result


def _hit_order(hit: str) -> tuple[int, str]:
    index, _, _ = hit.partition("|")
    return (int(index), hit) if index.isdigit() else (1 << 30, hit)


def es_error(value: dict[str, Any]) -> str | None:
    """The message of an Elasticsearch error response, or None when it is not one."""
    error = value.get("error")
    if error is None or ("status" not in value and not isinstance(error, dict)):
        return None
    if isinstance(error, dict):
        kind = error.get("type") or "error"
        reason = error.get("reason") or ""
        causes = error.get("root_cause")
        if not reason and isinstance(causes, list) and causes and isinstance(causes[0], dict):
            reason = causes[0].get("reason") or ""
        text = f"{kind}: {reason}" if reason else str(kind)
    else:
        text = str(error)
    status = value.get("status")
    return f"Elasticsearch returned an error{f' (status {status})' if status is not None else ''}: {text}"


def is_es_response(value: dict[str, Any]) -> bool:
    """A `_search`/scroll response, a hit, or an error response."""
    return "hits" in value or "_source" in value or "_scroll_id" in value or es_error(value) is not None


def es_documents(value: dict[str, Any], display: str, line: int) -> Iterator[tuple[str, object]]:
    """(`hits.hits[i]: ` prefix, `_source`) for every hit of a response; the document itself otherwise.

    An error response raises InputError: the export failed, so the file is not a flow log.
    """
    message = es_error(value)
    if message is not None:
        raise InputError(
            f"{display}:{line}: {message}; check the index pattern (tigera_secure_ee_flows.*), "
            "the query and the credentials, then export again"
        )
    if "_source" in value:
        yield "", _source(value, "_source")
        return
    if "hits" not in value:
        if "_scroll_id" in value:
            return
        yield "", value
        return
    outer = value["hits"]
    if not isinstance(outer, dict):
        yield "", BadField(f"field hits: expected an object, got {show(outer)}")
        return
    hits = outer.get("hits")
    if hits is None:
        return
    if not isinstance(hits, list):
        yield "", BadField(f"field hits.hits: expected a list, got {show(hits)}")
        return
    for position, hit in enumerate(hits):
        prefix = f"hits.hits[{position}]: "
        if not isinstance(hit, dict):
            yield prefix, BadField(f"expected an object, got {show(hit)}")
        else:
            yield prefix, _source(hit, "_source")


def _source(hit: dict[str, Any], field: str) -> object:
    source = hit.get(field)
    if source is None:
        return BadField("no _source (the search excluded it; export without _source filtering)")
    if not isinstance(source, dict):
        return BadField(f"field {field}: expected an object, got {show(source)}")
    return source
