"""Damaged files (a partial copy, bit rot): every reader names them and refuses; `store check` sets them aside.
Retention: `store prune --before T` removes whole hours at once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pytest
from conftest import ROOT, Run

from synth.base.timeutil import parse_time
from synth.store import dataset
from synth.store.check import prune_store
from synth.store.dataset import Store

HUBBLE = ROOT / "sample_flows" / "hubble-flows.json.gz"
HINT = "; `synth store check` lists the damaged files and sets them aside\n"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synth.cli import main

    store = tmp_path_factory.mktemp("pristine") / "store"
    assert main(["import", "hubble", str(HUBBLE), "--store", str(store)]) == 0
    return store


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(pristine, copy)
    return copy


def _flows(store: Path) -> int:
    return sum(int(pc.sum(b.column("count")).as_py() or 0) for b in Store(str(store)).read(["count"]))


def _hour(store: Path, hour: str) -> Path:
    (path,) = (store / "flows" / "source=hubble" / "date=2026-11-20" / f"hour={hour}").glob("*.parquet")
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rot(path: Path) -> None:
    """Flip bytes inside the column data, leaving the footer (and so the schema) intact."""
    data = bytearray(path.read_bytes())
    for offset in range(200, 2000):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _rot])
@pytest.mark.parametrize("command", [("edges",), ("generate", "-n", "shop", "--out", "{out}"), ("store", "info")])
def test_every_reader_names_the_damaged_file_and_refuses(
    store: Path, tmp_path: Path, synth: Callable[..., Run], damage: Callable[[Path], None], command: tuple[str, ...]
) -> None:
    bad = _hour(store, "07")
    damage(bad)
    result = synth(*(part.format(out=tmp_path / "out") for part in command), "--store", store)
    assert result.code == 3, result.err
    assert result.err.startswith(f"synth: error: {bad}: not a readable Parquet file (")
    assert result.err.endswith(HINT)
    assert "Traceback" not in result.err
    assert not (tmp_path / "out").exists()


def test_check_lists_the_damaged_files_then_quarantine_sets_them_aside(
    store: Path, pristine: Path, synth: Callable[..., Run]
) -> None:
    truncated, rotten = _hour(store, "03"), _hour(store, "15")
    _truncate(truncated)
    _rot(rotten)
    listed = synth("store", "check", "--store", store)
    assert listed.code == 1, listed.err
    lines = listed.out.splitlines()
    assert lines[0] == "checked 24 files: 2 damaged"
    assert lines[1].startswith(f"  {truncated}: not a readable Parquet file (")
    assert lines[2].startswith(f"  {rotten}: not a readable Parquet file (")
    assert lines[3] == f"to set them aside (out of every read): synth store check --quarantine --store {store}"
    assert truncated.exists() and rotten.exists()  # a plain check changes nothing

    moved = synth("store", "check", "--quarantine", "--store", store)
    assert moved.code == 0, moved.err
    assert moved.out.splitlines()[3:] == [
        f"moved 2 files (and the identities of their flows) to {store}/quarantine",
        f"to store the flows of {HUBBLE} again: synth import hubble {HUBBLE} --force --store {store}",
    ]
    assert not truncated.exists() and not rotten.exists()
    assert (store / "quarantine" / truncated.relative_to(store)).exists()
    assert (store / "quarantine" / "ids" / truncated.relative_to(store / "flows")).exists()
    assert synth("store", "check", "--store", store).out == "checked 22 files: all readable\n"
    assert synth("edges", "--store", store).code == 0
    info = synth("store", "info", "--store", store).out
    assert "files: 22," in info and "imports: 1" in info  # the ledger still records the import

    again = synth("import", "hubble", HUBBLE, "--force", "--store", store)
    assert again.code == 0, again.err
    assert _flows(store) == _flows(pristine)  # exactly the flows set aside came back, nothing twice


def test_prune_removes_whole_hours_and_info_shows_it(store: Path, pristine: Path, synth: Callable[..., Run]) -> None:
    result = synth("store", "prune", "--before", "2026-11-20T12:30:00Z", "--store", store)
    assert result.code == 0, result.err
    assert result.out.startswith("pruned 12 hours before 2026-11-20T12:30:00Z: 12 files, ")
    info = synth("store", "info", "--store", store).out
    assert "window: 2026-11-20T12:00:37Z .. 2026-11-20T23:56:39Z" in info
    assert "files: 12," in info
    assert len(list((store / "ids").rglob("*.parquet"))) == 12
    nothing = synth("store", "prune", "--before", "2026-11-20T12:30:00Z", "--store", store)
    assert nothing.code == 0 and nothing.err == "nothing stored before 2026-11-20T12:30:00Z\n"
    assert synth("import", "hubble", HUBBLE, "--force", "--store", store).code == 0
    assert _flows(store) == _flows(pristine)


def test_a_prune_killed_half_way_is_invisible_and_finished_by_the_next_writer(
    store: Path, pristine: Path, synth: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[str] = []
    real = dataset.delete_files

    def die_after_three(fs: object, paths: list[str]) -> None:
        for path in paths:
            if len(deleted) == 3:
                raise KeyboardInterrupt
            real(fs, [path])  # type: ignore[arg-type]
            deleted.append(path)

    monkeypatch.setattr(dataset, "delete_files", die_after_three)
    with pytest.raises(KeyboardInterrupt):
        prune_store(Store(str(store)), parse_time("2026-11-20T06:00:00Z"))
    monkeypatch.setattr(dataset, "delete_files", real)
    assert (store / ".compact-journal.json").exists()
    assert len(Store(str(store)).files()) == 18  # the six hours are gone for readers already
    assert synth("store", "info", "--store", store).out.count("files: 18,") == 1
    assert synth("import", "hubble", HUBBLE, "--store", store, "--force").code == 0  # the next writer finishes it
    assert not (store / ".compact-journal.json").exists()
    assert _flows(store) == _flows(pristine)
