"""One CLI language: the same namespace, window, output and filter flags wherever a command shows data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import yaml
from conftest import Run

from synth.cli import cli

DATA_COMMANDS = {
    ("edges",): ("table", "csv", "json", "yaml", "markdown"),
    ("verify",): ("table", "json", "yaml"),
    ("diff",): ("table", "markdown", "json", "yaml"),
    ("report",): ("markdown", "json", "yaml"),
    ("generate",): ("yaml", "json"),
}
FILTERED = (("edges",), ("verify",))


def command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for name in path:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def flags(path: tuple[str, ...]) -> dict[str, click.Parameter]:
    return {opt: p for p in command(path).params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("path", list(DATA_COMMANDS), ids=" ".join)
def test_every_data_command_takes_the_same_flags(path: tuple[str, ...]) -> None:
    options = flags(path)
    for flag in ("-n", "--namespace", "-A", "--all-namespaces", "--since", "--until", "-o", "--output", "--store"):
        assert flag in options, f"synth {' '.join(path)} has no {flag}"
    output = options["-o"].type
    assert isinstance(output, click.Choice) and tuple(output.choices) == DATA_COMMANDS[path]


def test_store_info_takes_output_formats() -> None:
    output = flags(("store", "info"))["-o"].type
    assert isinstance(output, click.Choice) and tuple(output.choices) == ("table", "json", "yaml")


@pytest.mark.parametrize("path", FILTERED, ids=" ".join)
def test_hubble_filters_on_edges_and_verify(path: tuple[str, ...]) -> None:
    options = flags(path)
    for flag in ("--pod", "--from-pod", "--to-pod", "--label", "-l", "--from-label", "--to-label",
                 "--from-namespace", "--to-namespace", "--port", "--protocol", "--verdict"):
        assert flag in options, f"synth {' '.join(path)} has no {flag}"


def test_help_names_the_store_variable(synth: Callable[..., Run]) -> None:
    for path, _ in [*DATA_COMMANDS.items(), (("store", "info"), ()), (("import", "hubble"), ())]:
        result = synth(*path, "--help")
        assert result.code == 0 and "SYNTH_STORE" in result.out, path


def edges(synth: Callable[..., Run], store: Path, *args: str) -> list[dict[str, object]]:
    result = synth("edges", "--store", store, "-o", "json", *args)
    assert result.code == 0, result.err
    rows: list[dict[str, object]] = json.loads(result.out)
    return rows


def test_edge_filters_select_as_hubble_does(synth: Callable[..., Run], sample_store: Path) -> None:
    everything = edges(synth, sample_store)
    api = edges(synth, sample_store, "--pod", "payments/api")
    assert api and all("payments" in (r["src_namespace"], r["dst_namespace"]) for r in api)
    assert all(any(str(p).startswith("api") for p in [*r["src_pods"], *r["dst_pods"]]) for r in api)  # type: ignore[misc]
    dropped = edges(synth, sample_store, "--verdict", "DROPPED")
    assert dropped and all(r["allowed"] is False for r in dropped)
    assert len(dropped) + len(edges(synth, sample_store, "--verdict", "forwarded")) == len(everything)
    into = edges(synth, sample_store, "--to-namespace", "payments", "--port", "5432")
    assert {(r["src_namespace"], r["dst_selector"]) for r in into} == {
        (None, "app.kubernetes.io/component=database,app.kubernetes.io/name=ledger"),  # the node's probes
        ("payments", "app.kubernetes.io/component=database,app.kubernetes.io/name=ledger"),
        ("shop", "app.kubernetes.io/component=database,app.kubernetes.io/name=ledger"),
    }
    assert all(r["src_namespace"] == "monitoring" for r in edges(synth, sample_store, "--from-namespace", "monitoring"))
    cart = edges(synth, sample_store, "-l", "app=cart,tier=backend", "--protocol", "udp")
    assert [(r["src_selector"], r["port"]) for r in cart] == [("app=cart", 53)]
    checkout = edges(synth, sample_store, "--from-label", "app!=frontend", "--to-label", "app=cart", "--from-pod", "ch")
    assert [(r["src_workloads"], r["dst_workloads"]) for r in checkout] == [
        (["Deployment/checkout"], ["Deployment/cart"])
    ]
    without_app = edges(synth, sample_store, "--from-label", "!app", "--to-label", "app=cart")
    assert [r["src_workloads"] for r in without_app] == [["StatefulSet/prometheus-k8s"]]
    assert not edges(synth, sample_store, "--pod", "payments/api", "--pod", "nothing-like-it", "--port", "1")


def test_output_formats_carry_the_same_edges(synth: Callable[..., Run], sample_store: Path) -> None:
    as_json = synth("edges", "--store", sample_store, "-n", "payments", "-o", "json").out
    as_yaml = synth("edges", "--store", sample_store, "-n", "payments", "-o", "yaml").out
    assert yaml.safe_load(as_yaml) == json.loads(as_json)
    table = synth("edges", "--store", sample_store, "-n", "payments").out.splitlines()
    markdown = synth("edges", "--store", sample_store, "-n", "payments", "-o", "markdown").out.splitlines()
    assert len(markdown) == len(table) + 1 and markdown[0].startswith("| source | destination | port |")


def test_verify_filters_choose_the_replayed_traffic(
    synth: Callable[..., Run], sample_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "policies"
    assert synth("generate", "-n", "payments", "--store", sample_store, "--out", out).code == 0
    whole = json.loads(synth("verify", "--policies", out, "--store", sample_store, "-o", "json").out)
    api = synth("verify", "--policies", out, "--store", sample_store, "--pod", "payments/api", "-o", "yaml")
    assert api.code == 0, api.err
    only_api = yaml.safe_load(api.out)
    assert 0 < only_api["flows"] < whole["flows"]
    assert "skipped" not in api.err  # the folder's kustomization.yaml files are synth's own, no news
    text = synth("verify", "--policies", out, "--store", sample_store, "-o", "text")  # the older name of table
    assert text.code == 0 and text.out.splitlines()[-1].startswith("verify: 0 observed flows denied")


def test_generate_and_report_print_json_and_yaml(synth: Callable[..., Run], sample_store: Path) -> None:
    listed = json.loads(synth("generate", "-n", "payments", "--store", sample_store, "-o", "json").out)
    stream = list(yaml.safe_load_all(synth("generate", "-n", "payments", "--store", sample_store).out))
    assert listed["kind"] == "List" and listed["items"] == stream
    report = yaml.safe_load(synth("report", "-n", "payments", "--store", sample_store, "-o", "yaml").out)
    assert report["summary"]["ok"] is True


def test_store_info_as_json(synth: Callable[..., Run], sample_store: Path) -> None:
    info = json.loads(synth("store", "info", "--store", sample_store, "-o", "json").out)
    assert info["flows"] == 26_061 and [s["source"] for s in info["sources"]] == ["hubble"]
    assert yaml.safe_load(synth("store", "info", "--store", sample_store, "-o", "yaml").out) == info


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("edges", "-n", "payments", "-A"), "exclude each other"),
        (("verify", "--policies", "x", "-n", "a", "--all-namespaces"), "exclude each other"),
        (("edges", "--label", "=web"), "is not key=value"),
        (("edges", "--port", "70000"), "70000"),
        (("edges", "--verdict", "maybe"), "maybe"),
        (("edges", "-o", "html"), "html"),
        (("diff", "--deployed", "x"), "-n NS (repeatable) or -A"),
        (("generate", "-n", "x", "--out", "d", "-o", "json"), "with --out they are files"),
        (("edges", "--since", "2026-11-20", "--until", "2026-11-19"), "is not before --until"),
        (("store", "info", "-o", "csv"), "csv"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_usage_errors_exit_2(synth: Callable[..., Run], tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = synth(*args, "--store", tmp_path)
    assert result.code == 2 and message in result.err, result.err
