"""An import leaves nothing running and nothing half-done: `kill -9` and Ctrl-C of a real `synth import`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from collecting import wait_for
from conftest import ROOT
from processes import children, start_synth

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

FLOWS = 100_000  # about 150 MB: an import of several seconds, so it is still parsing when signalled


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "flows.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_flows.py"), "big", "--flows", str(FLOWS), "--out", str(path)],
        check=True, capture_output=True,
    )
    return path


def _start_import(big_file: Path, store: Path) -> subprocess.Popen[str]:
    """Start the import and wait until it has staged flows: it is mid-way."""
    process = start_synth("import", "hubble", big_file, "--store", store)
    wait_for(lambda: any((store / ".staging").rglob("*.parquet")) or process.poll() is not None, 60,
             "the import to stage its first flows")
    assert process.poll() is None, process.communicate()
    return process


def _files(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}


def test_an_import_starts_no_process_so_kill_9_leaves_none(big_file: Path, tmp_path: Path) -> None:
    process = _start_import(big_file, tmp_path / "store")
    try:
        assert children(process.pid) == {}  # parsing runs on threads: nothing can be orphaned
        process.kill()
        process.wait(10)
    finally:
        process.kill()
        process.communicate()


def test_ctrl_c_of_an_import_stops_cleanly(big_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    sample = ROOT / "sample_flows" / "hubble-flows.json.gz"
    before = subprocess.run(
        [sys.executable, "-m", "synth", "import", "hubble", str(sample), "--store", str(store)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
    )
    assert "flows imported" in before.stdout
    files = _files(store)
    process = _start_import(big_file, store)
    try:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, err
    assert err.strip() == "synth: interrupted"
    assert out == ""
    assert _files(store) == files
