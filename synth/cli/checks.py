"""`synth verify` and `synth diff`: replay observed traffic through policies, compare two sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from synth.base.errors import EXIT_DIFFERENCES, EXIT_OK, UsageError
from synth.cli.common import (
    SYSTEM_LEFT_OUT,
    cli,
    cluster_options,
    deployed_options,
    filter_options,
    format_options,
    namespace_options,
    output_option,
    parse_window,
    say_loaded,
    settings_options,
    store_option,
    window_options,
)

if TYPE_CHECKING:
    from synth.base.config import Settings
    from synth.core.filters import TrafficFilter
    from synth.core.model import PolicyFormat


@cli.command("verify")
@click.option("--policies", "policy_paths", multiple=True, metavar="PATH",
              help="NetworkPolicies to check: YAML/JSON files or folders, - for stdin (repeatable). Workload "
              "manifests among them (Deployments, Pods, ...) resolve named ports.")
@cluster_options
@namespace_options()
@filter_options
@window_options
@output_option("table", "json", "yaml")
@click.option("--strict", is_flag=True,
              help="Also exit 1 when the policies allow connections that no flow used (other than those flagged).")
@click.option("--fqdn-pattern", "fqdn_patterns", multiple=True, metavar="PATTERN",
              help="A DNS-name pattern asked for, as given to generate: what only it allows is flagged as meant "
                   "(repeatable).")
@settings_options
@store_option
def verify_command(
    policy_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    traffic_filter: TrafficFilter,
    since: str | None,
    until: str | None,
    output: str,
    strict: bool,
    fqdn_patterns: tuple[str, ...],
    settings: Settings,
    store_path: str,
) -> int:
    """Prove both halves of least privilege against the stored flows; exit 1 if an observed flow is denied.

    1. Nothing observed is denied: every stored request flow is replayed; denied edges come with
    their reasons (which policy isolates the pod, that no rule allows it). Flows the policies
    cannot judge (ICMP, node traffic, unknown labels) are listed.
    2. Nothing unobserved is allowed: connections among the recorded workloads and addresses that
    the policies allow but no flow used, each with the rule that allows it (--strict fails on
    them). Cluster DNS, public ingress, workloads no label separates and names reached only through a
    --fqdn-pattern are flagged as meant.

    Check policy files (--policies) or the policies deployed in the cluster (--cluster). Named ports
    (`port: http`) resolve on the pods that workload manifests given with --policies, or the
    cluster's Pods, describe; the others stay unjudged.

    Every namespace unless -n names some. The filters (`hubble observe` spellings: --pod, --label,
    --from-namespace, --port, --verdict, ...) choose the recorded traffic that is replayed; the
    second half is drawn from the workloads of that traffic.
    """
    from synth.app.generation import load_deployed, verify_policies  # noqa: PLC0415 - loads per command
    from synth.core.dnsnames import normal_pattern  # noqa: PLC0415
    from synth.render.checks import render_verify  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    since_ns, until_ns = parse_window(since, until)
    loaded = load_deployed(
        policy_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces,
        files_option="--policies",
    )
    say_loaded(loaded)
    result = verify_policies(
        Store(store_path), settings, loaded.policies, workloads=loaded.workloads, namespaces=namespaces,
        since_ns=since_ns, until_ns=until_ns, traffic_filter=traffic_filter,
        patterns=tuple(normal_pattern(p) for p in fqdn_patterns),
    )
    click.echo(render_verify(result, output), nl=False)
    failed = not result.ok or (strict and result.over_permissive)
    return EXIT_DIFFERENCES if failed else EXIT_OK


@cli.command("diff")
@namespace_options(SYSTEM_LEFT_OUT, exclusive=False)
@deployed_options
@output_option("table", "markdown", "json", "yaml")
@format_options
@window_options
@settings_options
@store_option
def diff_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    deployed_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    output: str,
    policy_format: PolicyFormat,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Compare the deployed policies of a namespace with the ones generated from the stored flows.

    Shows a unified diff per object (normalised YAML), what changes for the observed traffic, and
    what the deployed policies allow that was never observed. Exit 0 when the same, 1 when not.
    Name the namespaces with -n, or -A for every one with observed traffic (system namespaces left out).
    """
    from synth.app.generation import generate, load_deployed  # noqa: PLC0415 - the library loads per command
    from synth.render.checks import render_diff  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    if not namespaces and not all_namespaces:
        raise UsageError("name the namespaces to compare: -n NS (repeatable) or -A for all")
    since_ns, until_ns = parse_window(since, until)
    loaded = load_deployed(
        deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
    )
    say_loaded(loaded)
    generated = generate(
        Store(store_path), settings, namespaces=namespaces, all_namespaces=all_namespaces, since_ns=since_ns,
        until_ns=until_ns, deployed=loaded.policies, workloads=loaded.workloads, policy_format=policy_format,
    )
    assert generated.diff is not None
    click.echo(render_diff(generated.diff, output), nl=False)
    return EXIT_DIFFERENCES if generated.diff.differs else EXIT_OK
