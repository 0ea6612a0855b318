"""Shared options, the `synth` group and `main`: the one place that maps errors to exit codes.

0 success, 1 differences or denied flows, 2 usage, 3 a reported error (bad input, unreachable
server), 4 an unexpected crash (printed with its trace)."""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import click

from synth import __version__
from synth.base.config import DnsTarget, Settings
from synth.base.errors import EXIT_CRASH, EXIT_USAGE, SynthError, UsageError
from synth.base.text import plural
from synth.base.timeutil import parse_time

if TYPE_CHECKING:
    from synth.app.deployed import LoadResult
    from synth.core.filters import LabelRequirement
    from synth.core.model import PolicyFormat

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


VERDICTS = ("forwarded", "dropped")  # hubble's names for what went through and what policy dropped


SYSTEM_LEFT_OUT = "Every namespace with observed traffic but the system ones (kube-system, ...; name those with -n)."


def namespace_options(all_help: str = "Every namespace (the default without -n).", *,
                      exclusive: bool = True) -> Callable[[F], F]:
    """`-n/--namespace NS` (repeatable) and `-A/--all-namespaces`, as kubectl spells them.

    Where -A means every namespace, naming some too is a usage error (`exclusive`); where -A leaves the
    system namespaces out (generate, report, diff), -n adds them back."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, namespaces: tuple[str, ...], all_namespaces: bool, **kwargs: Any) -> Any:
            if exclusive and namespaces and all_namespaces:
                raise UsageError("-n/--namespace and -A/--all-namespaces exclude each other: give one")
            return function(*args, namespaces=namespaces, all_namespaces=all_namespaces, **kwargs)

        wrapper = click.option("--all-namespaces", "-A", is_flag=True, help=all_help)(wrapper)
        return click.option("--namespace", "-n", "namespaces", multiple=True, metavar="NS",  # type: ignore[return-value]
                            help="Only this namespace (repeatable).")(wrapper)

    return decorate


def output_option(*formats: str, default: str | None = None) -> Callable[[F], F]:
    """`-o/--output FORMAT` from one vocabulary: table, csv, json, yaml, markdown (the first is the default).

    `text`, the older name of the human form of verify and diff, is still taken as `table`."""

    def decorate(function: F) -> F:
        return click.option(
            "-o", "--output", type=_Aliased(formats, {"text": "table"}), default=default or formats[0],
            show_default=True, help="Output format.",
        )(function)

    return decorate


class _Aliased(click.Choice):  # type: ignore[type-arg]
    """A Choice that also takes old names for some of its values (not listed in the help)."""

    def __init__(self, choices: Sequence[str], aliases: dict[str, str]) -> None:
        super().__init__(list(choices), case_sensitive=False)
        self.aliases = {k: v for k, v in aliases.items() if v in choices}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(self.aliases.get(str(value).lower(), value), param, ctx)


def filter_options(function: F) -> F:
    """Hubble's flow filters (`hubble observe` spellings), handed over as one `traffic_filter` value."""
    @functools.wraps(function)
    def wrapper(*args: Any, pods: tuple[str, ...], from_pods: tuple[str, ...], to_pods: tuple[str, ...],
                labels: tuple[str, ...], from_labels: tuple[str, ...], to_labels: tuple[str, ...],
                from_namespaces: tuple[str, ...], to_namespaces: tuple[str, ...], ports: tuple[int, ...],
                protocols: tuple[str, ...], verdicts: tuple[str, ...], **kwargs: Any) -> Any:
        from synth.core.filters import TrafficFilter  # noqa: PLC0415

        wanted = TrafficFilter(
            pods=pods, from_pods=from_pods, to_pods=to_pods,
            labels=tuple(map(parse_label_selector, labels)),
            from_labels=tuple(map(parse_label_selector, from_labels)),
            to_labels=tuple(map(parse_label_selector, to_labels)),
            from_namespaces=from_namespaces, to_namespaces=to_namespaces, ports=ports,
            protocols=tuple(p.upper() for p in protocols), verdicts=tuple(v.lower() for v in verdicts),
        )
        return function(*args, traffic_filter=wanted, **kwargs)

    for decorator in reversed((
        _repeatable("--pod", "pods", metavar="[NS/]POD",
                    help_text="Traffic from or to pods whose name starts with POD (repeatable)."),
        _repeatable("--from-pod", "from_pods", metavar="[NS/]POD", help_text="Traffic from these pods."),
        _repeatable("--to-pod", "to_pods", metavar="[NS/]POD", help_text="Traffic to these pods."),
        _repeatable("--label", "-l", "labels", metavar="SELECTOR",
                    help_text="Traffic from or to pods with these labels (k=v,k!=v,k,!k; repeatable)."),
        _repeatable("--from-label", "from_labels", metavar="SELECTOR", help_text="Traffic from pods with labels."),
        _repeatable("--to-label", "to_labels", metavar="SELECTOR", help_text="Traffic to pods with labels."),
        _repeatable("--from-namespace", "from_namespaces", metavar="NS", help_text="Traffic from pods in NS."),
        _repeatable("--to-namespace", "to_namespaces", metavar="NS", help_text="Traffic to pods in NS."),
        _repeatable("--port", "ports", kind=click.IntRange(0, 65535), help_text="Traffic to this port."),
        _repeatable("--protocol", "protocols", kind=click.Choice(["TCP", "UDP", "SCTP"], case_sensitive=False),
                    help_text="Traffic of this protocol."),
        _repeatable("--verdict", "verdicts", kind=click.Choice(VERDICTS, case_sensitive=False),
                    help_text="forwarded: traffic that went through; dropped: attempts dropped by policy."),
    )):
        wrapper = decorator(wrapper)
    return wrapper  # type: ignore[return-value]


def _repeatable(*decls: str, help_text: str, metavar: str | None = None,
                kind: click.ParamType | None = None) -> Callable[[F], F]:  # type: ignore[type-arg]
    return click.option(*decls, multiple=True, metavar=metavar, type=kind, help=help_text)


def parse_label_selector(text: str) -> tuple[LabelRequirement, ...]:
    """`app=web,tier!=db,!canary` as requirements (ANDed); a malformed one is a usage error."""
    from synth.core.filters import LabelRequirement  # noqa: PLC0415 - the library loads per command (fast --help)

    terms = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        if "!=" in raw:
            key, value = (s.strip() for s in raw.split("!=", 1))
            terms.append(LabelRequirement(key, value, negated=True))
        elif "=" in raw:
            key, value = (s.strip() for s in raw.replace("==", "=").split("=", 1))
            terms.append(LabelRequirement(key, value))
        elif raw.startswith("!"):
            key = raw[1:].strip()
            terms.append(LabelRequirement(key, negated=True))
        else:
            key = raw
            terms.append(LabelRequirement(key))
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"--label {text!r}: {raw!r} is not key=value, key!=value, key or !key")
    if not terms:
        raise UsageError(f"--label {text!r}: give at least one key=value")
    return tuple(terms)



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
    def wrapper(*args: Any, api: str, staged: bool, calico_enterprise: bool, tier: str | None, order: str | None,
                fqdn_patterns: tuple[str, ...], l7: bool, l7_max_paths: int | None, **kwargs: Any) -> Any:
        from synth.core.model import L7_MAX_PATHS, PolicyFormat  # noqa: PLC0415 - the library loads per command

        given = (("--staged", staged), ("--calico-enterprise", calico_enterprise), ("--tier", tier is not None),
                 ("--order", order is not None))
        calico_only = [flag for flag, present in given if present]
        if calico_only and api != "calico":
            raise UsageError(f"{calico_only[0]} is a Calico option: add --format calico")
        if (l7 or l7_max_paths is not None) and api != "cilium":
            raise UsageError(f"{'--l7' if l7 else '--l7-max-paths'} writes Cilium HTTP rules: add --format cilium")
        if l7_max_paths is not None and not l7:
            raise UsageError("--l7-max-paths limits the HTTP rules of --l7: add --l7")
        policy_format = PolicyFormat(api=api, staged=staged, calico_enterprise=calico_enterprise,  # type: ignore[arg-type]
                                     l7=l7, l7_max_paths=l7_max_paths or L7_MAX_PATHS)
        if tier is not None:
            policy_format = replace(policy_format, tier=_tier(tier))
        if order is not None:
            policy_format = replace(policy_format, order=_order(order))
        if fqdn_patterns:
            policy_format = replace(policy_format, fqdn_patterns=_fqdn_patterns(fqdn_patterns, policy_format))
        return function(*args, policy_format=policy_format, **kwargs)

    for decorator in (
        click.option("--l7-max-paths", type=click.IntRange(min=1), metavar="N",
                     help="With --l7: at most N HTTP entries (method and path) per peer and port; a peer that made "
                          "more distinct requests keeps an L4 rule on that port  [default: 20]."),
        click.option("--l7", is_flag=True,
                     help="With --format cilium: HTTP rules (method, path) on the ports where every peer was seen "
                          "making HTTP requests; identifiers in paths are generalised, and the report says how."),
        click.option("--fqdn-pattern", "fqdn_patterns", multiple=True, metavar="PATTERN",
                     help="With --format cilium or --format calico --calico-enterprise: allow the names seen that "
                          "PATTERN matches by PATTERN (*.example.com) rather than name by name (repeatable)."),
        click.option("--order", metavar="N",
                     help="With --format calico: the order of the policies in their tier, lower first (default 100; "
                          "Kubernetes NetworkPolicies run at 1000 in tier default)."),
        click.option("--tier", metavar="NAME",
                     help="With --format calico: the Calico tier of the policies (default: default), which must "
                          "exist before they are applied. Outside default, policy names are NAME.<name>."),
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


def _tier(text: str) -> str:
    """The `--tier` value, a name Calico takes for a tier."""
    from synth.policy.calico import tier_problem  # noqa: PLC0415 - the library loads per command

    problem = tier_problem(text)
    if problem is not None:
        raise UsageError(f"--tier: {problem}")
    return text


def _order(text: str) -> float:
    """The `--order` value: a finite number, 0 or more."""
    try:
        order = float(text)
    except ValueError:
        order = math.nan
    if not math.isfinite(order):
        raise UsageError(f"--order {text!r}: not a finite number")
    if order < 0:
        raise UsageError(f"--order {text!r}: must be 0 or more")
    return order


def _fqdn_patterns(texts: tuple[str, ...], policy_format: PolicyFormat) -> tuple[str, ...]:
    """The `--fqdn-pattern` values, checked for the chosen API, normalised, in the order given, once each."""
    from synth.core.dnsnames import normal_pattern, pattern_problem  # noqa: PLC0415 - the library loads per command

    if not policy_format.by_name:
        raise UsageError("--fqdn-pattern allows egress by DNS name: add --format cilium, or --format calico "
                         "--calico-enterprise")
    for text in texts:
        problem = pattern_problem(text, policy_format.api)
        if problem is not None:
            raise UsageError(f"--fqdn-pattern {text!r}: {problem}")
    return tuple(dict.fromkeys(normal_pattern(text) for text in texts))


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
                     help="Read the deployed policies from the cluster: NetworkPolicies and, where installed, "
                     "CiliumNetworkPolicies and Calico (Staged)NetworkPolicies (and its Pods, for named ports)."),
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
        say(f"skipped {plural(count, kind + ' object')}: neither policies nor workloads")
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
