"""The command line as a shell: help everywhere, exit codes in one place, no tracebacks for users."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from conftest import ROOT, Run

from synth.cli import cli


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


ALL_COMMANDS = list(commands(cli))


def test_the_documented_commands_exist() -> None:
    for expected in (("import", "hubble"), ("edges",), ("generate",)):
        assert expected in ALL_COMMANDS


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], synth: Callable[..., Run]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    result = synth(*path, "--help")
    assert result.code == 0 and "Usage: synth" in result.out


HEAVY_MODULES = ("pyarrow", "pandas", "numpy", "grpc", "jinja2", "yaml", "kubernetes", "msgspec", "orjson", "pyspark",
                 "duckdb")


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda path: " ".join(path) or "synth")
def test_help_loads_no_library(path: tuple[str, ...]) -> None:
    """`synth [COMMAND] --help` answers at once: the command modules load the library only when they run."""
    probe = (
        "import sys\n"
        "from synth.cli import main\n"
        f"code = main({[*path, '--help']!r})\n"
        f"print(code, sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_usage_errors_exit_2(synth: Callable[..., Run]) -> None:
    assert synth("no-such-command").code == 2
    assert synth("generate", "--public-threshold", "zero").code == 2
    result = synth("generate", "--store", "x")
    assert result.code == 2 and "--namespace" in result.err


def test_bad_time_is_a_usage_error(tmp_path: Path, synth: Callable[..., Run]) -> None:
    result = synth("edges", "--since", "last tuesday", "--store", tmp_path)
    assert result.code == 2 and "is not a time" in result.err


def test_a_crash_is_exit_4_with_a_trace(
    monkeypatch: pytest.MonkeyPatch, synth: Callable[..., Run], tmp_path: Path
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("synth.app.flows.aggregate_store", explode)
    result = synth("edges", "--store", tmp_path)
    assert result.code == 4 and "internal error" in result.err and "RuntimeError: boom" in result.err


def test_store_from_environment(monkeypatch: pytest.MonkeyPatch, sample_store: Path, synth: Callable[..., Run]) -> None:
    monkeypatch.setenv("SYNTH_STORE", str(sample_store))
    result = synth("edges", "-n", "payments", "-o", "csv")
    assert result.code == 0 and result.out.startswith("src_kind,")


def test_edges_outputs(sample_store: Path, synth: Callable[..., Run]) -> None:
    import json

    table = synth("edges", "-n", "payments", "--store", sample_store)
    assert table.code == 0 and table.out.splitlines()[0].split()[:2] == ["SOURCE", "DESTINATION"]
    rows = json.loads(synth("edges", "-n", "payments", "-o", "json", "--store", sample_store).out)
    assert rows and all(row["src_namespace"] == "payments" or row["dst_namespace"] == "payments" for row in rows)
    csv_lines = synth("edges", "-n", "payments", "-o", "csv", "--store", sample_store).out.splitlines()
    assert len(csv_lines) == len(rows) + 1


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synth", "--version"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.startswith("synth, version")
    script = Path(sys.executable).with_name("synth")
    assert script.exists()
    bad = subprocess.run(
        [
            str(script),
            "import",
            "hubble",
            str(ROOT / "tests" / "fixtures" / "hubble" / "bad" / "not-json.txt"),
            "--store",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 3 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_misleading_store_and_window_messages_are_plain(
    synth: Callable[..., Run], tmp_path: Path, sample_store: Path
) -> None:
    missing = synth("edges", "--store", tmp_path / "typo")
    assert missing.code == 3
    assert missing.err.startswith(f"synth: error: {tmp_path / 'typo'}: no such store (nothing is there)")
    a_file = tmp_path / "flows.json"
    a_file.write_text("{}\n")
    assert synth("generate", "-n", "x", "--store", a_file).err == (
        f"synth: error: {a_file}: is a file, not a store folder; check --store or $SYNTH_STORE\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no flows stored yet" in synth("edges", "--store", empty).err
    reversed_window = synth("edges", "--since", "2026-11-20", "--until", "2026-11-19", "--store", sample_store)
    assert reversed_window.code == 2
    assert "--since 2026-11-20 is not before --until 2026-11-19: the window is empty" in reversed_window.err


def test_store_help_names_the_environment_variable(synth: Callable[..., Run]) -> None:
    for command in (("edges",), ("generate",), ("verify",), ("import", "hubble")):
        assert "SYNTH_STORE" in synth(*command, "--help").out, command
