"""The `synth` command: a shell over the library. The only module that imports click.

Each command parses its options, calls one library function, formats the result and picks the
exit code. Errors map to exit codes in one place (`main`): 0 success, 1 differences or denied
flows, 2 usage, 3 a reported error (bad input, unreachable server), 4 an unexpected crash.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from synth import __version__, formats, ingest, pipeline
from synth.compact import compact_store
from synth.config import DnsTarget, Settings
from synth.errors import EXIT_CRASH, EXIT_USAGE, SynthError, UsageError
from synth.ingest import FileReport
from synth.output import write_tree
from synth.progress import Progress
from synth.sources.interface import SourceStats
from synth.spark_engine import aggregate_spark
from synth.store import Store
from synth.timeutil import format_ns, parse_time

F = TypeVar("F", bound=Callable[..., Any])


def store_option(function: F) -> F:
    """`--store PATH`, default ./synth-data or $SYNTH_STORE."""
    return click.option(
        "--store",
        "store_path",
        envvar="SYNTH_STORE",
        default="./synth-data",
        show_default=True,
        metavar="PATH",
        help="Flow store: a folder, or a pyarrow filesystem URI (s3://...).",
    )(function)


def window_options(function: F) -> F:
    """`--since` and `--until`."""
    function = click.option("--until", metavar="TIME", help="Only flows before this time.")(function)
    return click.option(
        "--since", metavar="TIME", help="Only flows from this time on (RFC 3339, a date, or 48h for 48 hours ago)."
    )(function)


def settings_options(function: F) -> F:
    """The generation knobs shared by generate, report and diff, handed over as one `settings` value."""

    @functools.wraps(function)
    def wrapper(*args: Any, public_threshold: int, allow_host_traffic: bool, allow_dropped: bool,
                dns_namespace: str, dns_selector: str, dns_ports: tuple[int, ...], **kwargs: Any) -> Any:
        settings = _settings(
            public_threshold, allow_host_traffic, allow_dropped, dns_namespace, dns_selector, dns_ports
        )
        return function(*args, settings=settings, **kwargs)

    for decorator in (
        click.option("--dns-port", "dns_ports", type=click.IntRange(1, 65535), multiple=True,
                     help="Cluster DNS port (repeatable; default 53, e.g. 5353 on OpenShift)."),
        click.option("--dns-selector", default="k8s-app=kube-dns", show_default=True, metavar="K=V[,K=V]",
                     help="Labels of the cluster DNS pods (NodeLocal DNS, OpenShift dns-default, ...)."),
        click.option("--dns-namespace", default="kube-system", show_default=True,
                     help="Namespace of the cluster DNS pods."),
        click.option("--public-threshold", type=click.IntRange(min=1), default=Settings().public_ingress_threshold,
                     show_default=True, help="Distinct external sources on one port that make it a public endpoint."),
        click.option("--allow-host-traffic", is_flag=True, help="Turn node and host traffic into ipBlock rules."),
        click.option("--allow-dropped", is_flag=True, help="Turn dropped (denied) attempts into allow rules too."),
    ):
        wrapper = decorator(wrapper)
    return wrapper  # type: ignore[return-value]


def _settings(public_threshold: int, allow_host_traffic: bool, allow_dropped: bool, dns_namespace: str = "kube-system",
              dns_selector: str = "k8s-app=kube-dns", dns_ports: tuple[int, ...] = ()) -> Settings:
    pairs = []
    for item in filter(None, (part.strip() for part in dns_selector.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--dns-selector: {item!r} is not key=value")
        pairs.append((key, value))
    if not pairs:
        raise UsageError("--dns-selector: give at least one key=value")
    ports = tuple(sorted(set(dns_ports))) or (53,)
    dns = DnsTarget(namespace=dns_namespace, pod_labels=tuple(sorted(pairs)), ports=ports)
    return Settings(public_ingress_threshold=public_threshold, allow_host_traffic=allow_host_traffic,
                    allow_dropped=allow_dropped, dns=dns)


def _window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    return (parse_time(since) if since else None, parse_time(until) if until else None)


def _say(text: str) -> None:
    click.echo(text, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="synth")
def cli() -> None:
    """Turn observed Kubernetes traffic into least-privilege NetworkPolicies.

    Record flows (import or collect), look at the dependency map (edges), then generate
    default-deny policies with one allow rule per observed dependency.
    """


@cli.group("import")
def import_group() -> None:
    """Import flow files into the store."""


@import_group.command("hubble")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="Stop at the first bad record (exit 3) instead of skipping it.")
@click.option("--force", is_flag=True, help="Import a file again even if it was imported before.")
@store_option
def import_hubble(files: tuple[str, ...], strict: bool, force: bool, store_path: str) -> int:
    """Import `hubble observe -o json` / jsonpb output or exporter files (.gz read transparently; - is stdin)."""
    _print_import(_import(store_path, "hubble", files, strict=strict, force=force))
    return 0


def _import(store_path: str, source: str, files: tuple[str, ...], **options: Any) -> list[FileReport]:
    progress = Progress()
    count = len(files)

    def show(display: str, stats: SourceStats, done: int, total: int) -> None:
        position = files.index(display) + 1 if display in files else count
        progress.update(flows=stats.flows, files=(position, count), done_bytes=done, total_bytes=total,
                        last_ns=stats.last_time_ns)

    try:
        return ingest.import_files(Store(store_path), source, files, on_batch=show, **options)
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
        click.echo(
            f"{report.input}: {report.flows:,} flows imported, {format_ns(report.first_ns)} .. "
            f"{format_ns(report.last_ns)}"
            + (f"; {report.skipped:,} records skipped" if report.skipped else "")
            + (f"; {events} not stored as flows" if events else "")
        )
        if report.lost_events:
            click.echo(
                f"{report.input}: warning: {report.lost_events:,} events were lost by Hubble; edges may be "
                "missing from this recording"
            )
        for skip in report.skips:
            _say(f"  skipped {skip}")
        if report.skipped > len(report.skips):
            _say(f"  ... and {report.skipped - len(report.skips):,} more skipped records")


@cli.command("edges")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Only edges touching this namespace (repeatable).")
@window_options
@click.option("-o", "--output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--engine", type=click.Choice(["embedded", "spark"]), default="embedded", show_default=True,
              help="Aggregate in this process (pyarrow) or on Apache Spark (pip install 'synth[spark]').")
@click.option("--spark-master", metavar="URL", help="Spark master (default: local mode on every core).")
@store_option
def edges_command(namespaces: tuple[str, ...], since: str | None, until: str | None, output: str, engine: str,
                  spark_master: str | None, store_path: str) -> int:
    """Show the dependency map: who talks to whom, on which port, how often."""
    since_ns, until_ns = _window(since, until)
    window = {"namespaces": namespaces or None, "since_ns": since_ns, "until_ns": until_ns}
    if engine == "spark":
        edges = aggregate_spark(Store(store_path), Settings(), master=spark_master, **window)  # type: ignore[arg-type]
    else:
        progress = Progress()

        def show(done: int, total: int, flows: int) -> None:
            progress.update(files=(done, total), flows=flows, label="aggregating")

        try:
            edges = pipeline.load_edges(Store(store_path), Settings(), on_file=show, **window)  # type: ignore[arg-type]
        finally:
            progress.done()
    render = {"table": formats.edges_table, "csv": formats.edges_csv, "json": formats.edges_json}[output]
    click.echo(render(edges), nl=False)
    return 0


def deployed_options(function: F) -> F:
    """`--deployed PATH` (repeatable) or `--cluster` with `--kubeconfig`/`--context`: the deployed policies."""
    for decorator in (
        click.option("--context", metavar="NAME", help="Kubeconfig context for --cluster."),
        click.option("--kubeconfig", metavar="PATH", help="Kubeconfig for --cluster (default: $KUBECONFIG)."),
        click.option("--cluster", is_flag=True, help="Read the deployed NetworkPolicies from the cluster."),
        click.option("--deployed", "deployed_paths", multiple=True, metavar="PATH",
                     help="Deployed NetworkPolicies: YAML/JSON files or folders, - for stdin (repeatable)."),
    ):
        function = decorator(function)
    return function


def _say_skipped(skipped_by_kind: tuple[tuple[str, int], ...]) -> None:
    for kind, count in skipped_by_kind:
        _say(f"skipped {count} {kind} object(s): not networking.k8s.io/v1 NetworkPolicies")


@cli.command("generate")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Namespace to generate policies for (repeatable).")
@click.option("--all-namespaces", "-A", is_flag=True, help="Every namespace with observed traffic.")
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Write one file per policy under DIR/<namespace>/ (default: print one YAML stream).",
)
@deployed_options
@click.option("--diff-out", metavar="FILE", help="With --deployed/--cluster: write the full diff (markdown) to FILE.")
@click.option("--pr", "pull_request", is_flag=True,
              help="With --out: also write DIR/PR.md, a pull-request description a reviewer can approve from.")
@click.option("--pr-format", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True,
              help="Format of the --pr description: DIR/PR.md, or DIR/PR.json for CI bots.")
@click.option("--rare-flows", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="With --pr: flag rules seen in fewer than N flows as backed by little evidence.")
@window_options
@settings_options
@store_option
def generate_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    out_dir: str | None,
    deployed_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    diff_out: str | None,
    pull_request: bool,
    pr_format: str,
    rare_flows: int,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Generate least-privilege NetworkPolicies from the stored flows, checked against those flows.

    With --deployed or --cluster, proposed policies keep the names of deployed ones that select
    the same pods, and a summary of the diff against the deployed policies is printed. With --pr,
    DIR/PR.md describes the change for reviewers (as `synth report` prints it).
    """
    if pull_request and out_dir is None:
        raise UsageError("--pr needs --out DIR: the description is written beside the policies")
    since_ns, until_ns = _window(since, until)
    deployed = None
    if deployed_paths or cluster:
        loaded = pipeline.load_deployed(
            deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
        )
        _say_skipped(loaded.skipped_by_kind())
        deployed = loaded.policies
    elif diff_out:
        raise UsageError("--diff-out needs the deployed policies (--deployed PATH or --cluster)")
    generated = pipeline.generate(
        Store(store_path),
        settings,
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        since_ns=since_ns,
        until_ns=until_ns,
        deployed=deployed,
    )
    synthesis = generated.synthesis
    if out_dir is None:
        click.echo(pipeline.policy_stream(synthesis), nl=False)
    else:
        files = pipeline.with_existing_namespaces(out_dir, generated.files)
        pr_name = "PR.json" if pr_format == "json" else "PR.md"
        if pull_request:
            files[pr_name] = pipeline.pull_request_text(
                Store(store_path), generated, pr_format, out_dir=out_dir, rare_flows=rare_flows,
                since_ns=since_ns, until_ns=until_ns,
            )
        written = write_tree(out_dir, files)
        click.echo(f"wrote {len(written)} files to {out_dir}")
        if pull_request:
            click.echo(f"wrote the pull-request description to {out_dir.rstrip('/')}/{pr_name}")
    for namespace in synthesis.namespaces:
        count = len(synthesis.policies.in_namespace(namespace))
        kinds: dict[str, int] = {}
        for finding in synthesis.findings:
            if finding.namespace == namespace:
                kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        notes = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        _say(f"{namespace}: {count} policies" + (f"; findings: {notes}" if notes else ""))
    _say(generated.verification.summary())
    if generated.diff is not None:
        for namespace, proposed, kept in generated.diff.renamed:
            _say(f"{namespace}: {proposed} keeps the deployed name {kept}")
        _say(generated.diff.summary())
        if diff_out:
            pipeline.write_text(diff_out, generated.diff.render("markdown"))
            _say(f"wrote the diff to {diff_out}")
        else:
            _say("the full diff: synth diff with the same options, or --diff-out FILE")
    return 0


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
@click.option("--force", is_flag=True, help="Import a file again even if it was imported before.")
@store_option
def import_calico(files: tuple[str, ...], calico_format: str, strict: bool, force: bool, store_path: str) -> int:
    """Import Calico flow logs: flows.log, Elasticsearch exports, Goldmane NDJSON, whisker JSON/SSE (- is stdin)."""
    reports = _import(store_path, "calico", files, strict=strict, force=force, format=calico_format)
    _print_import(reports)
    return 0


@cli.command("verify")
@click.option("--policies", "policy_paths", multiple=True, required=True, metavar="PATH",
              help="NetworkPolicies to check: YAML/JSON files or folders, - for stdin (repeatable).")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Only flows touching this namespace (repeatable).")
@window_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@store_option
def verify_command(
    policy_paths: tuple[str, ...],
    namespaces: tuple[str, ...],
    since: str | None,
    until: str | None,
    output: str,
    store_path: str,
) -> int:
    """Replay the stored request flows through NetworkPolicies; exit 1 if any observed flow is denied.

    Denied edges come with their reasons (which policy isolates the pod, that no rule allows the
    connection); flows the policies cannot judge (ICMP, node traffic, unknown labels) are listed.
    """
    since_ns, until_ns = _window(since, until)
    loaded = pipeline.load_deployed(policy_paths, namespaces=namespaces)
    _say_skipped(loaded.skipped_by_kind())
    result = pipeline.verify_policies(
        Store(store_path), Settings(), loaded.policies, namespaces=namespaces, since_ns=since_ns, until_ns=until_ns
    )
    click.echo(result.render(output), nl=False)
    return result.exit_code


@cli.command("diff")
@click.option("--namespace", "-n", "namespaces", multiple=True, required=True,
              help="Namespace whose policies to compare (repeatable).")
@deployed_options
@click.option("-o", "--output", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@window_options
@settings_options
@store_option
def diff_command(
    namespaces: tuple[str, ...],
    deployed_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    output: str,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Compare the deployed policies of a namespace with the ones generated from the stored flows.

    Shows a unified diff per object (normalised YAML), what changes for the observed traffic, and
    what the deployed policies allow that was never observed. Exit 0 when the same, 1 when not.
    """
    since_ns, until_ns = _window(since, until)
    loaded = pipeline.load_deployed(
        deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
    )
    _say_skipped(loaded.skipped_by_kind())
    generated = pipeline.generate(
        Store(store_path), settings, namespaces=namespaces, since_ns=since_ns, until_ns=until_ns,
        deployed=loaded.policies,
    )
    assert generated.diff is not None
    click.echo(generated.diff.render(output), nl=False)
    return generated.diff.exit_code


@cli.group("collect")
def collect_group() -> None:
    """Collect flows live from a cluster into the store."""


@collect_group.command("hubble")
@click.option("--server", required=True, metavar="HOST:PORT", help="hubble-relay or agent address (tls:// for TLS).")
@window_options
@click.option("--duration", metavar="DURATION", help="Collect live for this long (48h, 90m), then stop.")
@click.option("--follow", "-f", is_flag=True, help="Collect live until interrupted (SIGINT/SIGTERM flush and exit 0).")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Only flows from or to this namespace.")
@click.option("--verdict", "verdicts", multiple=True, help="Only flows with this verdict (FORWARDED, DROPPED, ...).")
@click.option("--allowlist", multiple=True, metavar="JSON", help="Only flows matching this FlowFilter (repeatable).")
@click.option("--denylist", multiple=True, metavar="JSON", help="Leave out flows matching this FlowFilter.")
@click.option("--tls", is_flag=True, help="Use TLS (the server certificate is verified).")
@click.option("--tls-ca-cert-files", multiple=True, metavar="FILE", help="CA certificates to verify the server with.")
@click.option("--tls-client-cert-file", metavar="FILE", help="Client certificate, for mutual TLS.")
@click.option("--tls-client-key-file", metavar="FILE", help="Client key, for mutual TLS.")
@click.option("--tls-server-name", metavar="NAME", help="Name to verify the server certificate against.")
@click.option("--tls-allow-insecure", is_flag=True, help="Trust whatever certificate the server presents.")
@click.option("--request-timeout", default="12s", show_default=True, metavar="DURATION", help="For unary calls.")
@click.option("--flush-interval", default="60s", show_default=True, metavar="DURATION", help="Store flows this often.")
@click.option("--flush-flows", type=click.IntRange(min=1), default=250_000, show_default=True, help="Or every N flows.")
@store_option
def collect_hubble_command(server: str, since: str | None, until: str | None, duration: str | None, follow: bool,
                           namespaces: tuple[str, ...], verdicts: tuple[str, ...], allowlist: tuple[str, ...],
                           denylist: tuple[str, ...], tls: bool, request_timeout: str, flush_interval: str,
                           flush_flows: int, store_path: str, **tls_files: Any) -> int:
    """Collect flows from Hubble's Observer gRPC API into the store (until the window or duration ends)."""
    from synth import collect  # noqa: PLC0415 - grpc is loaded for this command only
    from synth.timeutil import parse_duration  # noqa: PLC0415

    since_ns, until_ns = _window(since, until)
    options = collect.CollectOptions(
        server, since_ns, until_ns, parse_duration(duration) if duration else None, follow, namespaces, verdicts,
        allowlist, denylist, collect.TlsOptions(tls, **{k.removeprefix("tls_"): v for k, v in tls_files.items()}),
        parse_duration(request_timeout), parse_duration(flush_interval), flush_flows,
    )
    report = collect.collect_hubble(Store(store_path), options, progress=collect.tty_progress(), notify=_say)
    for line in collect.summary_lines(report):
        click.echo(line)
    return 0


@cli.command("compact")
@click.option("--older-than", default="1h", show_default=True, metavar="DURATION",
              help="Only hours that ended at least this long ago (leave the hour being written alone).")
@store_option
def compact_command(older_than: str, store_path: str) -> int:
    """Rewrite each stored hour as one compacted file (identical flows per minute become one row)."""
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


@cli.command("report")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Namespace to describe (repeatable).")
@click.option("--all-namespaces", "-A", is_flag=True, help="Every namespace with observed traffic.")
@deployed_options
@click.option("-o", "--output", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--policies-dir", default="policies", show_default=True, metavar="DIR",
              help="Where `synth generate --out DIR` writes the policies: used in the roll-out commands.")
@click.option("--rare-flows", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="Flag rules seen in fewer than N flows as backed by little evidence.")
@window_options
@settings_options
@store_option
def report_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    deployed_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    output: str,
    policies_dir: str,
    rare_flows: int,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Print the pull-request description of the policies `synth generate` would write; write nothing.

    Summary, what changes for traffic (against --deployed/--cluster when given), every rule with
    its evidence, risks for the reviewer, a dependency graph (mermaid) and how to roll out.
    -o json gives the same content for CI bots (gate on summary.ok).
    """
    since_ns, until_ns = _window(since, until)
    deployed = None
    if deployed_paths or cluster:
        loaded = pipeline.load_deployed(
            deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
        )
        _say_skipped(loaded.skipped_by_kind())
        deployed = loaded.policies
    store = Store(store_path)
    generated = pipeline.generate(
        store, settings, namespaces=namespaces, all_namespaces=all_namespaces, since_ns=since_ns, until_ns=until_ns,
        deployed=deployed,
    )
    text = pipeline.pull_request_text(
        store, generated, output, out_dir=policies_dir, rare_flows=rare_flows, since_ns=since_ns, until_ns=until_ns
    )
    click.echo(text, nl=False)
    return 0


@collect_group.command("calico")
@click.option("--server", required=True, metavar="HOST:PORT",
              help="Goldmane address (goldmane.calico-system.svc:7443, or a port-forward).")
@window_options
@click.option("--duration", metavar="DURATION", help="Collect live for this long (48h, 90m), then stop.")
@click.option("--follow", "-f", is_flag=True, help="Collect live until interrupted (SIGINT/SIGTERM flush and exit 0).")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Only flows from or to this namespace.")
@click.option("--tls-ca-cert-files", multiple=True, metavar="FILE",
              help="CA certificates to verify Goldmane with (Secret calico-system/goldmane-key-pair, tls.crt).")
@click.option("--tls-client-cert-file", metavar="FILE", help="Client certificate (Secret calico-system/node-certs).")
@click.option("--tls-client-key-file", metavar="FILE", help="Client key (Secret calico-system/node-certs, tls.key).")
@click.option("--tls-server-name", metavar="NAME", help="Name to verify the server certificate against.")
@click.option("--tls-allow-insecure", is_flag=True, help="Trust whatever certificate the server presents.")
@click.option("--insecure-plaintext", is_flag=True, help="No TLS at all (test servers only; Goldmane requires mTLS).")
@click.option("--request-timeout", default="12s", show_default=True, metavar="DURATION", help="For List calls.")
@click.option("--page-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Flows per List page.")
@click.option("--flush-interval", default="60s", show_default=True, metavar="DURATION", help="Store flows this often.")
@click.option("--flush-flows", type=click.IntRange(min=1), default=250_000, show_default=True, help="Or every N flows.")
@store_option
def collect_calico_command(server: str, since: str | None, until: str | None, duration: str | None, follow: bool,
                           namespaces: tuple[str, ...], insecure_plaintext: bool, request_timeout: str, page_size: int,
                           flush_interval: str, flush_flows: int, store_path: str, **tls_files: Any) -> int:
    """Collect flows from Calico OSS Goldmane (List the backlog, then Stream) into the store, over mutual TLS."""
    from synth import collect_calico, collect_common  # noqa: PLC0415 - grpc is loaded for this command only
    from synth.timeutil import parse_duration  # noqa: PLC0415

    since_ns, until_ns = _window(since, until)
    options = collect_calico.CalicoOptions(
        server, since_ns, until_ns, parse_duration(duration) if duration else None, follow, namespaces,
        collect_calico.tls_options(insecure_plaintext, **{k.removeprefix("tls_"): v for k, v in tls_files.items()}),
        parse_duration(request_timeout), page_size, parse_duration(flush_interval), flush_flows,
    )
    report = collect_calico.collect_calico(
        Store(store_path), options, progress=collect_common.tty_progress(), notify=_say
    )
    for line in collect_common.summary_lines(report):
        click.echo(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="synth", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        _say("synth: interrupted")
        return 130
    except SynthError as e:
        _say(f"synth: error: {e}")
        return e.exit_code
    except BrokenPipeError:
        return 0
    except Exception:  # noqa: BLE001 - the one place that turns a crash into exit 4
        _say("synth: internal error (a bug in synth; please report it with this trace):")
        _say(traceback.format_exc().rstrip())
        return EXIT_CRASH
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
