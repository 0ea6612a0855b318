"""A regular (non-editable) install must carry everything synth reads at run time."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if importlib.util.find_spec("setuptools") is not None:
        command.insert(4, "--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("synth-*.whl")
    return path


def test_wheel_contains_templates_and_generated_protobuf_code(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted(p.name for p in (ROOT / "templates").glob("*.j2"))
    assert templates
    for template in templates:
        assert f"synth/templates/{template}" in names
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "synth").rglob("*.py"))
    assert any(module.startswith("synth/_proto/") for module in modules)
    missing = [module for module in modules if module not in names]
    assert not missing, f"not in the wheel (list the package in pyproject.toml): {missing}"
    assert "synth/py.typed" in names
    assert any(name.endswith("entry_points.txt") for name in names)
