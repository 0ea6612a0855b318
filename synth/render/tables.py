"""Text forms of edges and findings for the terminal: aligned tables, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from synth.core.aggregate import EdgeSet
from synth.render.jinja import comment_text


def endpoint_text(row: dict[str, Any], side: str) -> str:
    """`namespace/workload` for pods (the selector is in the JSON and CSV forms), `kind address` otherwise."""
    kind = row[f"{side}_kind"]
    if kind == "pod":
        names = sorted({w.rsplit("/", 1)[-1] for w in row[f"{side}_workloads"]})
        return f"{row[f'{side}_namespace']}/{'+'.join(names) or row[f'{side}_selector']}"
    return f"{kind} {row[f'{side}_selector']}".strip()


def _port(row: dict[str, Any]) -> str:
    return f"{row['protocol']}/{row['port']}" if row["port"] is not None else row["protocol"]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def edges_table(edges: EdgeSet) -> str:
    """An aligned table, one edge per line; untrusted text escaped."""
    header = ("SOURCE", "DESTINATION", "PORT", "FLOWS", "FIRST SEEN", "LAST SEEN", "VERDICT")
    lines = [header]
    for row in edges.rows():
        lines.append(
            (
                comment_text(endpoint_text(row, "src")),
                comment_text(endpoint_text(row, "dst")),
                _port(row),
                f"{row['count']:,}",
                _stamp(row["first_seen"]),
                _stamp(row["last_seen"]),
                "allowed" if row["allowed"] else "denied",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines) + "\n"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            result[key] = _stamp(value)
        elif key == "verdicts":
            result[key] = dict(value)
        else:
            result[key] = value
    return result


def edges_json(edges: EdgeSet) -> str:
    """The edge rows as a JSON array."""
    return json.dumps([_plain(row) for row in edges.rows()], indent=2, sort_keys=True) + "\n"


def edges_csv(edges: EdgeSet) -> str:
    """The edge rows as CSV; list columns joined with `;`."""
    out = io.StringIO()
    names = edges.table.schema.names
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in edges.rows():
        plain = _plain(row)
        writer.writerow(
            [
                ";".join(f"{k}={v}" for k, v in plain[n].items())
                if isinstance(plain[n], dict)
                else ";".join(plain[n])
                if isinstance(plain[n], list)
                else ("" if plain[n] is None else plain[n])
                for n in names
            ]
        )
    return out.getvalue()
