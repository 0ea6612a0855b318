"""Shared options, the `synth` group and `main`: the one place that maps errors to exit codes.

0 success, 1 differences or denied flows, 2 usage, 3 a reported error (bad input, unreachable
server), 4 an unexpected crash (printed with its trace)."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from synth import __version__
from synth.base.config import DnsTarget, Settings
from synth.base.errors import EXIT_CRASH, EXIT_USAGE, SynthError, UsageError
from synth.base.timeutil import parse_time

if TYPE_CHECKING:
    from synth.app.deployed import LoadResult

F = TypeVar("F", bound=Callable[..., Any])


def store_option(function: F) -> F:
    """`--store PATH`, default ./synth-data or $SYNTH_STORE."""
    return click.option(
        "--store",
        "store_path",
        envvar="SYNTH_STORE",
        show_envvar=True,
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


def format_options(function: F) -> F:
    """`--format` and its Calico options, handed over as one `policy_format` value."""

    @functools.wraps(function)
    def wrapper(*args: Any, api: str, staged: bool, calico_enterprise: bool, **kwargs: Any) -> Any:
        from synth.core.model import PolicyFormat  # noqa: PLC0415 - the library loads per command (fast --help)

        if (staged or calico_enterprise) and api != "calico":
            flag = "--staged" if staged else "--calico-enterprise"
            raise UsageError(f"{flag} is a Calico option: add --format calico")
        policy_format = PolicyFormat(api=api, staged=staged, calico_enterprise=calico_enterprise)  # type: ignore[arg-type]
        return function(*args, policy_format=policy_format, **kwargs)

    for decorator in (
        click.option("--calico-enterprise", is_flag=True,
                     help="With --format calico: allow world egress by DNS name (destination.domains, Calico "
                          "Enterprise and Cloud only)."),
        click.option("--staged", is_flag=True,
                     help="With --format calico: write StagedNetworkPolicy, to watch what would be denied first."),
        click.option("--format", "api", type=click.Choice(["kubernetes", "cilium", "calico"]), default="kubernetes",
                     show_default=True, help="Policy API: networking.k8s.io/v1 NetworkPolicy, Cilium "
                                             "CiliumNetworkPolicy or Calico projectcalico.org/v3."),
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


def parse_window(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """`--since`/`--until` as epoch nanoseconds; an empty or reversed window is a usage error."""
    since_ns, until_ns = (parse_time(since) if since else None, parse_time(until) if until else None)
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise UsageError(f"--since {since} is not before --until {until}: the window is empty")
    return since_ns, until_ns


def say(text: str) -> None:
    click.echo(text, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="synth")
def cli() -> None:
    """Turn observed Kubernetes traffic into least-privilege NetworkPolicies.

    Record flows (import or collect), look at the dependency map (edges), then generate
    default-deny policies with one allow rule per observed dependency.
    """


def cluster_options(function: F) -> F:
    """`--cluster` with `--kubeconfig`/`--context`: the policies (and pods, for named ports) from the cluster."""
    for decorator in (
        click.option("--context", metavar="NAME", help="Kubeconfig context for --cluster."),
        click.option("--kubeconfig", metavar="PATH", help="Kubeconfig for --cluster (default: $KUBECONFIG)."),
        click.option("--cluster", is_flag=True,
                     help="Read the deployed NetworkPolicies from the cluster (and its Pods, for named ports)."),
    ):
        function = decorator(function)
    return function


def deployed_options(function: F) -> F:
    """`--deployed PATH` (repeatable) or `--cluster` with `--kubeconfig`/`--context`: the deployed policies."""
    function = cluster_options(function)
    return click.option(
        "--deployed", "deployed_paths", multiple=True, metavar="PATH",
        help="Deployed NetworkPolicies: YAML/JSON files or folders, - for stdin (repeatable). Workload manifests "
        "among them (Deployments, Pods, ...) resolve named ports.",
    )(function)  # fmt: skip


def say_loaded(loaded: LoadResult) -> None:
    """What loading the policies skipped and warns about, on stderr."""
    for kind, count in loaded.skipped_by_kind():
        say(f"skipped {count} {kind} object(s): neither policies nor workloads")
    for warning in loaded.warnings:
        say(f"warning: {warning}")


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
        say("synth: interrupted")
        return 130
    except SynthError as e:
        say(f"synth: error: {e}")
        return e.exit_code
    except BrokenPipeError:
        return 0
    except Exception:  # noqa: BLE001 - the one place that turns a crash into exit 4
        say("synth: internal error (a bug in synth; please report it with this trace):")
        say(traceback.format_exc().rstrip())
        return EXIT_CRASH
    return int(result or 0)
