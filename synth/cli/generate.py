"""`synth generate` and `synth report`: policies, and the description a reviewer approves from."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from synth.base.config import SHORT_WINDOW_HOURS
from synth.base.errors import UsageError
from synth.base.text import plural
from synth.cli.common import (
    SYSTEM_LEFT_OUT,
    cli,
    deployed_options,
    format_options,
    namespace_options,
    output_option,
    parse_window,
    say,
    say_loaded,
    settings_options,
    store_option,
    window_options,
)

if TYPE_CHECKING:
    from synth.app.generation import Generated
    from synth.base.config import Settings
    from synth.core.model import PolicyFormat, PolicySet, Workload
    from synth.policy.diff import DiffResult



@cli.command("generate")
@namespace_options(SYSTEM_LEFT_OUT, exclusive=False)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Write one file per policy under DIR/<namespace>/ (default: print the policies, as -o says).",
)
@output_option("yaml", "json")
@deployed_options
@click.option("--diff-out", metavar="FILE", help="With --deployed/--cluster: write the full diff (markdown) to FILE.")
@click.option("--pr", "pull_request", is_flag=True,
              help="With --out: also write DIR/PR.md, a pull-request description a reviewer can approve from.")
@click.option("--pr-format", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True,
              help="Format of the --pr description: DIR/PR.md, or DIR/PR.json for CI bots.")
@click.option("--rare-flows", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="With --pr: flag rules seen in fewer than N flows as backed by little evidence.")
@click.option("--accept-denied", is_flag=True,
              help="Write the policies even though they would deny observed flows (the reasons are printed).")
@click.option("--strict", is_flag=True,
              help="Also refuse policies that allow connections no flow used (other than those flagged as meant).")
@format_options
@window_options
@settings_options
@store_option
def generate_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    out_dir: str | None,
    output: str,
    deployed_paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    diff_out: str | None,
    pull_request: bool,
    pr_format: str,
    rare_flows: int,
    accept_denied: bool,
    strict: bool,
    policy_format: PolicyFormat,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Generate least-privilege NetworkPolicies from the stored flows, checked against those flows.

    The policies are checked for both halves of least privilege before anything is written: exit
    1, writing nothing, if they would deny observed flows (unless --accept-denied), or with --strict
    if they allow connections no flow used.

    With --deployed or --cluster, proposed policies keep the names of deployed ones that select
    the same pods, and a summary of the diff against the deployed policies is printed. With --pr,
    DIR/PR.md describes the change for reviewers (as `synth report` prints it).
    """
    from synth.app import generation as pipeline  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.render.folder import write_tree  # noqa: PLC0415
    from synth.render.tables import manifest_list_json  # noqa: PLC0415
    from synth.store.dataset import Store  # noqa: PLC0415

    if out_dir is not None and output != "yaml":
        raise UsageError("-o chooses how the policies are printed; with --out they are files (--pr-format for PR)")
    if pull_request and out_dir is None:
        raise UsageError("--pr needs --out DIR: the description is written beside the policies")
    since_ns, until_ns = parse_window(since, until)
    deployed: PolicySet | None = None
    workloads: tuple[Workload, ...] = ()
    if deployed_paths or cluster:
        loaded = pipeline.load_deployed(
            deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
        )
        say_loaded(loaded)
        deployed, workloads = loaded.policies, loaded.workloads
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
        workloads=workloads,
        policy_format=policy_format,
    )
    _say_summary(generated)
    pipeline.check_safe(generated, accept_denied=accept_denied, strict=strict)
    if out_dir is None:
        stream = pipeline.policy_stream(generated.synthesis)
        click.echo(manifest_list_json(stream) if output == "json" else stream, nl=False)
    else:
        files = pipeline.with_existing_namespaces(out_dir, generated.files)
        pr_name = "PR.json" if pr_format == "json" else "PR.md"
        if pull_request:
            files[pr_name] = pipeline.describe(
                Store(store_path), generated, pr_format, out_dir=out_dir, rare_flows=rare_flows,
                since_ns=since_ns, until_ns=until_ns,
            )
        written = write_tree(out_dir, files)
        click.echo(f"wrote {plural(len(written), 'file')} to {out_dir}")
        if pull_request:
            click.echo(f"wrote the pull-request description to {out_dir.rstrip('/')}/{pr_name}")
    if generated.diff is not None:
        _say_diff(generated.diff, diff_out)
    return 0


def _say_summary(generated: Generated) -> None:
    """Per namespace: policies and findings by kind; then the self-check."""
    synthesis = generated.synthesis
    if generated.left_out:
        say(f"left out system namespaces {', '.join(generated.left_out)}: name them with -n to generate theirs")
    for namespace in synthesis.namespaces:
        count = len(synthesis.policies.in_namespace(namespace))
        kinds = Counter(str(f.kind) for f in synthesis.findings if f.namespace == namespace)
        notes = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        say(f"{namespace}: {count} policies" + (f"; findings: {notes}" if notes else ""))
    say(generated.verification.summary())
    stats = generated.edges.stats
    if stats.first_ns is not None and stats.last_ns is not None:
        hours = (stats.last_ns - stats.first_ns) / 3_600_000_000_000
        if hours < SHORT_WINDOW_HOURS:
            say(f"warning: the recording covers {hours:.1f} hours, less than a day: daily jobs may be missing; "
                "record 24-48 h before enforcing")


def _say_diff(diff: DiffResult, diff_out: str | None) -> None:
    """The diff against the deployed policies in one line, the whole of it to `diff_out`."""
    from synth.app.generation import write_text  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.render.checks import diff_markdown, diff_summary, named_ports_text  # noqa: PLC0415

    for namespace, proposed, kept in diff.renamed:
        say(f"{namespace}: {proposed} keeps the deployed name {kept}")
    say(diff_summary(diff))
    if named_ports_text(diff.named_ports):
        say(f"deployed {named_ports_text(diff.named_ports)}")
    if diff_out:
        write_text(diff_out, diff_markdown(diff))
        say(f"wrote the diff to {diff_out}")
    else:
        say("the full diff: synth diff with the same options, or --diff-out FILE")


@cli.command("report")
@namespace_options(SYSTEM_LEFT_OUT, exclusive=False)
@deployed_options
@output_option("markdown", "json", "yaml")
@click.option("--policies-dir", default="policies", show_default=True, metavar="DIR",
              help="Where `synth generate --out DIR` writes the policies: used in the roll-out commands.")
@click.option("--rare-flows", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="Flag rules seen in fewer than N flows as backed by little evidence.")
@format_options
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
    policy_format: PolicyFormat,
    since: str | None,
    until: str | None,
    settings: Settings,
    store_path: str,
) -> int:
    """Print the pull-request description of the policies `synth generate` would write; write nothing.

    Summary, what changes for traffic (against --deployed/--cluster when given), every rule with
    its evidence, risks for the reviewer, a dependency graph (mermaid) and how to roll out.
    -o json (or yaml) gives the same content for CI bots (gate on summary.ok).
    """
    from synth.app import generation as pipeline  # noqa: PLC0415 - the library loads per command (fast --help)
    from synth.store.dataset import Store  # noqa: PLC0415

    since_ns, until_ns = parse_window(since, until)
    deployed: PolicySet | None = None
    workloads: tuple[Workload, ...] = ()
    if deployed_paths or cluster:
        loaded = pipeline.load_deployed(
            deployed_paths, cluster=cluster, kubeconfig=kubeconfig, context=context, namespaces=namespaces
        )
        say_loaded(loaded)
        deployed, workloads = loaded.policies, loaded.workloads
    store = Store(store_path)
    generated = pipeline.generate(
        store, settings, namespaces=namespaces, all_namespaces=all_namespaces, since_ns=since_ns, until_ns=until_ns,
        deployed=deployed, workloads=workloads, policy_format=policy_format,
    )
    text = pipeline.describe(
        store, generated, output, out_dir=policies_dir, rare_flows=rare_flows, since_ns=since_ns, until_ns=until_ns
    )
    click.echo(text, nl=False)
    return 0
