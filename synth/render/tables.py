"""Text forms of edges and findings for the terminal: aligned tables, CSV, JSON, YAML, markdown."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import yaml

from synth.core.aggregate import Edge, EdgeEnd, EdgeSet
from synth.render.jinja import comment_text
from synth.store.schema import EDGE_SCHEMA


def endpoint_text(end: EdgeEnd) -> str:
    """`namespace/workload` for pods (the selector is in the JSON and CSV forms), `kind address` otherwise."""
    if end.kind == "pod":
        names = sorted({w.rsplit("/", 1)[-1] for w in end.workloads})
        return f"{end.namespace}/{'+'.join(names) or end.selector}"
    return f"{end.kind} {end.selector}".strip()


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


_HEADER = ("SOURCE", "DESTINATION", "PORT", "FLOWS", "FIRST SEEN", "LAST SEEN", "VERDICT")


def _edge_rows(edges: EdgeSet) -> list[tuple[str, ...]]:
    """One row of cells per edge, ordered by what the table shows (the selectors behind the names are in
    the JSON and CSV forms); untrusted text escaped."""
    lines = []
    for edge in edges.edges:
        lines.append(
            (
                comment_text(endpoint_text(edge.src)),
                comment_text(endpoint_text(edge.dst)),
                edge.port_text(),
                f"{edge.count:,}",
                _stamp(edge.first_seen),
                _stamp(edge.last_seen),
                "allowed" if edge.allowed else "denied",
            )
        )
    return sorted(lines, key=lambda line: (line[0], line[1], _port_order(line[2]), line[6]))


def edges_table(edges: EdgeSet) -> str:
    """An aligned table, one edge per line."""
    header = _HEADER
    lines = [header, *_edge_rows(edges)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines) + "\n"


def edges_markdown(edges: EdgeSet) -> str:
    """A GitHub markdown table of the same rows (pipes escaped)."""
    lines = ["| " + " | ".join(h.lower() for h in _HEADER) + " |", "|---|---|---|---:|---|---|---|"]
    for row in _edge_rows(edges):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def yaml_text(json_text: str) -> str:
    """A JSON document of ours as block YAML, keys in the same (sorted) order: `-o yaml` everywhere."""
    return str(yaml.safe_dump(json.loads(json_text), sort_keys=False, allow_unicode=True, default_flow_style=False))


def manifest_list_json(stream: str) -> str:
    """A multi-document YAML stream of manifests as one `kind: List` in JSON, documents in order."""
    items = [document for document in yaml.safe_load_all(stream) if document is not None]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2) + "\n"


def _port_order(text: str) -> tuple[str, int]:
    protocol, _, port = text.partition("/")
    return (protocol, int(port) if port.isdigit() else -1)


def _plain(edge: Edge) -> dict[str, Any]:
    """One edge as EDGE_SCHEMA columns of JSON values (times to the second, verdicts as a mapping)."""
    row: dict[str, Any] = {}
    for side, end in (("src", edge.src), ("dst", edge.dst)):
        row |= {f"{side}_kind": end.kind, f"{side}_namespace": end.namespace, f"{side}_selector": end.selector,
                f"{side}_workloads": list(end.workloads), f"{side}_pods": list(end.pods)}
    return row | {
        "protocol": edge.protocol,
        "port": edge.port,
        "allowed": edge.allowed,
        "count": edge.count,
        "first_seen": _stamp(edge.first_seen),
        "last_seen": _stamp(edge.last_seen),
        "dst_names": list(edge.dst_names),
        "dst_services": list(edge.dst_services),
        "verdicts": dict(edge.verdicts),
    }


def edges_json(edges: EdgeSet) -> str:
    """The edges as a JSON array of EDGE_SCHEMA rows."""
    return json.dumps([_plain(edge) for edge in edges.edges], indent=2, sort_keys=True) + "\n"


def edges_yaml(edges: EdgeSet) -> str:
    """The JSON form as YAML."""
    return yaml_text(edges_json(edges))


def edges_csv(edges: EdgeSet) -> str:
    """The edges as CSV in EDGE_SCHEMA column order; list columns joined with `;`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EDGE_SCHEMA.names)
    for edge in edges.edges:
        plain = _plain(edge)
        writer.writerow([_cell(plain[name]) for name in EDGE_SCHEMA.names])
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ";".join(value)
    return "" if value is None else value
