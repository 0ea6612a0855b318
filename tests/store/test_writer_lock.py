"""One writer per store: a second import, a compaction or a collection is refused while one writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from collecting import wait_for
from conftest import ROOT, Run
from processes import start_synth

from synth.base.errors import StoreError
from synth.store.dataset import Store

FLOWS = 40_000


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flows") / "flows.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_flows.py"), "big", "--flows", str(FLOWS), "--out", str(path)],
        check=True, capture_output=True,
    )
    return path


def _holder(store: Path) -> dict[str, object]:
    lock = store / "writer.lock"
    text = lock.read_text() if lock.exists() else ""
    return json.loads(text) if text.strip() else {}


def _stored_flows(store: Path) -> int:
    return sum(sum(batch.column("count").to_pylist()) for batch in Store(str(store)).read(["count"]))


@pytest.mark.slow
def test_two_imports_at_once_one_is_refused_naming_the_other(flow_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = start_synth("import", "hubble", flow_file, "--store", store)
    try:
        wait_for(lambda: bool(_holder(store)) or first.poll() is not None, 60, "the first import to take the lock")
        assert first.poll() is None, first.communicate()
        second = start_synth("import", "hubble", flow_file, "--store", store)
        out, err = second.communicate(timeout=60)
        first_out, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode == 3, err
    assert out == ""
    since = err.split("since ", 1)[1].split(")", 1)[0]
    assert err == (
        f"synth: error: {store}: the store is being written by `synth import hubble {flow_file} --store {store}` "
        f"(pid {first.pid} on {socket.gethostname()}, since {since}); wait for it to finish, or use another "
        "--store\n"
    )
    imported = int(first_out.split(" flows imported")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert _stored_flows(store) == imported > FLOWS * 0.9  # once, not twice
    assert _holder(store) == {}  # released


def test_compact_and_import_are_refused_while_a_writer_holds_the_store(
    sample_store: Path, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    store = tmp_path / "store"
    sample = ROOT / "sample_flows" / "hubble-flows.json.gz"
    assert synth("import", "hubble", sample, "--store", store).code == 0
    with Store(str(store)).writing("synth collect hubble --server relay:443"):
        holder = _holder(store)
        assert holder["pid"] == os.getpid() and holder["command"] == "synth collect hubble --server relay:443"
        compact = synth("compact", "--older-than", "0s", "--store", store)
        again = synth("import", "hubble", "--force", sample, "--store", store)
        with pytest.raises(StoreError, match="the store is being written by `synth collect hubble"), \
                Store(str(store)).writing():
            pass
    for run in (compact, again):
        assert run.code == 3
        assert run.err.startswith(
            f"synth: error: {store}: the store is being written by `synth collect hubble --server relay:443` "
            f"(pid {os.getpid()} on {socket.gethostname()}, since "
        )
    assert synth("compact", "--older-than", "0s", "--store", store).code == 0  # released
