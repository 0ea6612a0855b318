"""`synth store info`: what a store holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from synth.base.timeutil import format_ns
from synth.cli.common import cli, output_option, store_option

if TYPE_CHECKING:
    from synth.store.info import StoreInfo


@cli.group("store")
def store_group() -> None:
    """Look at the flow store."""


@store_group.command("info")
@output_option("table", "json", "yaml")
@store_option
def info_command(output: str, store_path: str) -> int:
    """Show the store's imports, sources, observation window, flows, files and size."""
    import json  # noqa: PLC0415

    from synth.render.tables import yaml_text  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.store.dataset import Store  # noqa: PLC0415
    from synth.store.info import store_info  # noqa: PLC0415

    info = store_info(Store(store_path))
    if output == "table":
        click.echo("\n".join(info_lines(info)))
        return 0
    document = json.dumps(info_document(info), indent=2, sort_keys=True) + "\n"
    click.echo(yaml_text(document) if output == "yaml" else document, nl=False)
    return 0


def info_document(info: StoreInfo) -> dict[str, Any]:
    """The report as JSON values: the same fields as the table, times in RFC 3339."""
    return {
        "store": info.root,
        "first_flow": format_ns(info.first_ns), "last_flow": format_ns(info.last_ns),
        "flows": info.flows, "rows": info.rows, "files": info.files, "bytes": info.bytes,
        "sources": [
            {"source": s.source, "flows": s.flows, "rows": s.rows, "files": s.files, "bytes": s.bytes,
             "first_flow": format_ns(s.first_ns), "last_flow": format_ns(s.last_ns)}
            for s in info.sources
        ],
        "imports": [
            {"imported_at": e.imported_at, "source": e.facts.get("source", "?"), "input": e.input,
             "flow_records": e.flows, "sha256": e.sha256}
            for e in info.imports
        ],
    }


def info_lines(info: StoreInfo) -> list[str]:
    """The report, one line each: totals first, then sources, then the imports oldest first.

    Flows are the sum of `count` (a Calico record stands for several); an import lists the records it
    stored, as its ledger entry holds them.
    """
    lines = [
        f"store: {info.root}",
        f"window: {format_ns(info.first_ns)} .. {format_ns(info.last_ns)}",
        f"flows: {info.flows:,} in {info.rows:,} rows",
        f"files: {info.files:,}, {info.bytes:,} bytes",
        f"sources: {len(info.sources)}",
    ]
    for source in info.sources:
        lines.append(
            f"  {source.source}: {source.flows:,} flows in {source.rows:,} rows, {source.files:,} files, "
            f"{source.bytes:,} bytes, {format_ns(source.first_ns)} .. {format_ns(source.last_ns)}"
        )
    lines.append(f"imports: {len(info.imports)}")
    for entry in info.imports:
        kind = entry.facts.get("source", "?")
        lines.append(f"  {entry.imported_at}  {kind}  {entry.input}: {entry.flows:,} flow records")
    return lines
