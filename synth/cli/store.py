"""`synth store info`: what a store holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from synth.base.timeutil import format_ns
from synth.cli.common import cli, store_option

if TYPE_CHECKING:
    from synth.store.info import StoreInfo


@cli.group("store")
def store_group() -> None:
    """Look at the flow store."""


@store_group.command("info")
@store_option
def info_command(store_path: str) -> int:
    """Show the store's imports, sources, observation window, flows, files and size."""
    from synth.store.dataset import Store  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.store.info import store_info  # noqa: PLC0415

    click.echo("\n".join(info_lines(store_info(Store(store_path)))))
    return 0


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
