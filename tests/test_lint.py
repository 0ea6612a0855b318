"""The house rules hold: ruff's rule list (with the banned imports), mypy strict on synth/, and no merge conflict
left in any text file (a marker inside a docstring or a template parses and renders, so nothing else sees it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"{name} is not installed")
    return str(path)


def test_ruff() -> None:
    result = subprocess.run([_tool("ruff"), "check", "synth", "tests", "scripts"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


_MARKERS = ("<" * 7 + " ", "=" * 7 + "\n", ">" * 7 + " ")


def test_no_merge_conflict_markers() -> None:
    suffixes = {".py", ".j2", ".md", ".toml", ".yaml", ".yml", ".proto", ".cfg", ".txt", ""}
    found = []
    skipped = ("build", "dist")  # with hidden folders and *.egg-info: tools' caches, the virtualenv, build output
    tops = [top for top in sorted(ROOT.iterdir())
            if not top.name.startswith(".") and top.name not in skipped and not top.name.endswith(".egg-info")]
    for path in (p for top in tops for p in ([top] if top.is_file() else sorted(top.rglob("*")))):
        if not path.is_file() or path.suffix not in suffixes:
            continue
        try:
            lines = path.read_text().splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(lines, 1) if line.startswith(_MARKERS)]
    assert not found, "merge conflict markers: " + ", ".join(found)
