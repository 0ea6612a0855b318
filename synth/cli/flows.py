"""`synth import`, `synth edges` and `synth compact`: flows into the store, the store into edges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from synth.base.text import plural
from synth.base.timeutil import format_ns, parse_time
from synth.cli.common import (
    cli,
    filter_options,
    namespace_options,
    output_option,
    parse_window,
    say,
    store_option,
    window_options,
)
from synth.cli.progress import Progress

if TYPE_CHECKING:
    from synth.app.ingest import FileReport
    from synth.core.filters import TrafficFilter
    from synth.sources.interface import SourceStats


@cli.group("import")
def import_group() -> None:
    """Import flow files into the store."""


@import_group.command("hubble")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="Stop at the first bad record (exit 3) instead of skipping it.")
@click.option("--force", is_flag=True, help="Read a file again even if imported before (each flow still stored once).")
@store_option
def import_hubble(files: tuple[str, ...], strict: bool, force: bool, store_path: str) -> int:
    """Import `hubble observe -o json` / jsonpb output or exporter files (.gz read transparently; - is stdin)."""
    _print_import(_import(store_path, "hubble", files, strict=strict, force=force))
    return 0


def _import(store_path: str, source: str, files: tuple[str, ...], **options: Any) -> list[FileReport]:
    from synth.app.ingest import import_files  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.store.dataset import Store  # noqa: PLC0415

    progress = Progress()
    count = len(files)

    def show(display: str, stats: SourceStats, done: int, total: int) -> None:
        position = files.index(display) + 1 if display in files else count
        progress.update(flows=stats.flows, files=(position, count), done_bytes=done, total_bytes=total,
                        last_ns=stats.last_time_ns)

    try:
        return import_files(Store(store_path), source, files, on_batch=show, **options)
    finally:
        progress.done()


def _print_import(reports: list[FileReport]) -> None:
    for report in reports:
        if report.status == "duplicate":
            previous = report.duplicate_of
            assert previous is not None
            click.echo(
                f"{report.input}: already imported on {previous.imported_at} ({previous.flows:,} flows); "
                "skipped (use --force to import it again)"
            )
            continue
        events = ", ".join(f"{n:,} {kind}" for kind, n in report.other_events)
        already = f" ({report.already_stored:,} more already in the store)" if report.already_stored else ""
        click.echo(
            f"{report.input}: {plural(report.flows, 'flow')} imported{already}, {format_ns(report.first_ns)} .. "
            f"{format_ns(report.last_ns)}"
            + (f"; {plural(report.skipped, 'record')} skipped" if report.skipped else "")
            + (f"; {events} not stored as flows" if events else "")
        )
        if report.lost_events:
            click.echo(
                f"{report.input}: warning: {report.lost_events:,} events were lost by Hubble; edges may be "
                "missing from this recording"
            )
        for skip in report.skips:
            say(f"  skipped {skip}")
        if report.skipped > len(report.skips):
            say(f"  ... and {report.skipped - len(report.skips):,} more skipped records")


@import_group.command("calico")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format",
    "calico_format",
    type=click.Choice(["auto", "flowlog", "elasticsearch", "goldmane", "whisker"]),
    default="auto",
    show_default=True,
    help="Input format; auto detects it from the first record.",
)
@click.option("--strict", is_flag=True, help="Stop at the first bad record (exit 3) instead of skipping it.")
@click.option("--force", is_flag=True, help="Read a file again even if imported before (each flow still stored once).")
@store_option
def import_calico(files: tuple[str, ...], calico_format: str, strict: bool, force: bool, store_path: str) -> int:
    """Import Calico flow logs: flows.log, Elasticsearch exports, Goldmane NDJSON, whisker JSON/SSE (- is stdin)."""
    reports = _import(store_path, "calico", files, strict=strict, force=force, format=calico_format)
    _print_import(reports)
    return 0


@cli.command("edges")
@namespace_options()
@filter_options
@window_options
@output_option("table", "csv", "json", "yaml", "markdown")
@click.option("--engine", type=click.Choice(["embedded", "spark"]), default="embedded", show_default=True,
              help="Aggregate in this process (DuckDB) or on Apache Spark (pip install 'synth[spark]').")
@click.option("--spark-master", metavar="URL", help="Spark master (default: local mode on every core).")
@store_option
def edges_command(namespaces: tuple[str, ...], all_namespaces: bool, traffic_filter: TrafficFilter,
                  since: str | None, until: str | None, output: str, engine: str, spark_master: str | None,
                  store_path: str) -> int:
    """Show the dependency map: who talks to whom, on which port, how often.

    Every namespace unless -n names some (an edge touching one of them is shown). The filters take
    `hubble observe` spellings: --pod, --label, --from-namespace, --to-namespace, --port, --verdict, ...
    """
    from synth.app.flows import aggregate_store  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.base.config import Settings  # noqa: PLC0415
    from synth.core.filters import filter_edges  # noqa: PLC0415
    from synth.render import tables  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    since_ns, until_ns = parse_window(since, until)
    window = {"namespaces": namespaces or None, "since_ns": since_ns, "until_ns": until_ns}
    if engine == "spark":
        from synth.app.spark import aggregate_spark  # noqa: PLC0415

        edges = aggregate_spark(Store(store_path), Settings(), master=spark_master, **window)  # type: ignore[arg-type]
    else:
        progress = Progress()

        def show(done: int, total: int, flows: int) -> None:
            progress.update(files=(done, total), flows=flows, label="aggregating")

        try:
            edges = aggregate_store(Store(store_path), Settings(), on_file=show, **window)  # type: ignore[arg-type]
        finally:
            progress.done()
    edges = filter_edges(edges, traffic_filter)
    render = {"table": tables.edges_table, "csv": tables.edges_csv, "json": tables.edges_json,
              "markdown": tables.edges_markdown, "yaml": tables.edges_yaml}[output]
    click.echo(render(edges), nl=False)
    return 0


@cli.command("compact")
@click.option("--older-than", default="1h", show_default=True, metavar="DURATION",
              help="Only hours that ended at least this long ago (leave the hour being written alone).")
@store_option
def compact_command(older_than: str, store_path: str) -> int:
    """Rewrite each stored hour as one compacted file, a few for a busy hour (identical flows per minute: one row)."""
    from synth.store.dataset import Store  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.store.maintenance import compact_store  # noqa: PLC0415

    progress = Progress()
    try:
        report = compact_store(
            Store(store_path), before_ns=parse_time(older_than),
            progress=lambda done, total: progress.update(files=(done + 1, total), label="compacting"),
        )
    finally:
        progress.done()
    if not report.hours:
        click.echo("nothing to compact")
        return 0
    click.echo(f"compacted {report.hours} hours: {report.files_before} files -> {report.files_after}, "
               f"{report.rows_before:,} rows -> {report.rows_after:,}, "
               f"{report.bytes_before:,} bytes -> {report.bytes_after:,}")
    return 0
