"""`synth collect hubble|calico`: live collection over gRPC into the store."""

from __future__ import annotations

from typing import Any

import click

from synth.cli.common import (
    cli,
    parse_window,
    say,
    store_option,
    window_options,
)


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
    from synth.base.timeutil import parse_duration  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.collect import hubble as collect  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    since_ns, until_ns = parse_window(since, until)
    options = collect.CollectOptions(
        server, since_ns, until_ns, parse_duration(duration) if duration else None, follow, namespaces, verdicts,
        allowlist, denylist, collect.TlsOptions(tls, **{k.removeprefix("tls_"): v for k, v in tls_files.items()}),
        parse_duration(request_timeout), parse_duration(flush_interval), flush_flows,
    )
    report = collect.collect_hubble(Store(store_path), options, progress=collect.tty_progress(), notify=say)
    for line in collect.summary_lines(report):
        click.echo(line)
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
    from synth.base.timeutil import parse_duration  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.collect import calico as collect_calico  # noqa: PLC0415
    from synth.collect import loop as collect_common  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    since_ns, until_ns = parse_window(since, until)
    options = collect_calico.CalicoOptions(
        server, since_ns, until_ns, parse_duration(duration) if duration else None, follow, namespaces,
        collect_calico.tls_options(insecure_plaintext, **{k.removeprefix("tls_"): v for k, v in tls_files.items()}),
        parse_duration(request_timeout), page_size, parse_duration(flush_interval), flush_flows,
    )
    report = collect_calico.collect_calico(
        Store(store_path), options, progress=collect_common.tty_progress(), notify=say
    )
    for line in collect_common.summary_lines(report):
        click.echo(line)
    return 0
