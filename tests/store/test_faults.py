"""Faults of the store itself: a full disk, a read-only store, a path that is a file, a newer store, a reader
racing a writer. Each is one line and exit 3, and the store keeps nothing half-done."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, ROOT, Run
from disks import fill, read_only, small_disk, tree

from synth.store import dataset
from synth.store.dataset import VERSION_KEY, Store

HUBBLE = ROOT / "sample_flows" / "hubble-flows.json.gz"
ENVELOPE = FIXTURES / "hubble" / "envelope.json"


def _flows(store: Path) -> int:
    return sum(int(pc.sum(b.column("count")).as_py() or 0) for b in Store(str(store)).read(["count"]))


def _halves(tmp_path: Path) -> tuple[Path, Path]:
    lines = gzip.decompress(HUBBLE.read_bytes()).splitlines(keepends=True)
    even, odd = tmp_path / "even.json", tmp_path / "odd.json"
    even.write_bytes(b"".join(lines[::2]))
    odd.write_bytes(b"".join(lines[1::2]))
    return even, odd


def test_disk_full_during_an_import_leaves_the_store_as_it_was(tmp_path: Path, synth: Callable[..., Run]) -> None:
    with small_disk(tmp_path / "disk", 1024) as disk:
        store = disk / "store"
        assert synth("import", "hubble", ENVELOPE, "--store", store).code == 0
        before = tree(store)
        fill(disk, 120_000)
        result = synth("import", "hubble", HUBBLE, "--store", store)
        assert result.code == 3
        assert result.err == (f"synth: error: {store}: cannot write the store: No space left on device; "
                              f"nothing of {HUBBLE} was stored\n")
        assert tree(store) == before
        assert _flows(store) == 5


def test_disk_full_during_compaction_loses_and_doubles_nothing(tmp_path: Path, synth: Callable[..., Run]) -> None:
    even, odd = _halves(tmp_path)
    with small_disk(tmp_path / "disk", 2048) as disk:
        store = disk / "store"
        assert synth("import", "hubble", even, odd, "--store", store).code == 0  # two files per hour
        edges = synth("edges", "-o", "json", "--store", store).out
        filler = fill(disk, 8_000)  # less than one compacted hour (each frees more than it takes)
        result = synth("compact", "--older-than", "2026-11-22", "--store", store)
        assert result.code == 3
        assert result.err.startswith(f"synth: error: {store}: cannot write the store: No space left on device; "
                                     "compaction stopped: ")
        assert result.err.endswith("compaction stopped: 0 hours were compacted, the others are as they were\n")
        assert not [p for p in store.rglob(".*") if p.is_file()]  # no temporary, no journal
        assert _flows(store) == 13_200
        assert synth("edges", "-o", "json", "--store", store).out == edges
        filler.unlink()
        assert synth("compact", "--older-than", "2026-11-22", "--store", store).code == 0
        assert len(list((store / "flows").rglob("*.parquet"))) == 24
        assert _flows(store) == 13_200
        assert synth("edges", "-o", "json", "--store", store).out == edges


def test_a_read_only_store_is_read_and_refuses_writes_in_one_line(tmp_path: Path, synth: Callable[..., Run]) -> None:
    with small_disk(tmp_path / "disk", 2048) as disk:
        store = disk / "store"
        assert synth("import", "hubble", ENVELOPE, "--store", store).code == 0
        read_only(disk)
        before = tree(store)
        assert synth("edges", "--store", store).code == 0
        assert synth("store", "info", "--store", store).code == 0
        for command in (("import", "hubble", HUBBLE), ("compact",), ("store", "prune", "--before", "2026-11-21")):
            result = synth(*command, "--store", store)
            assert (result.code, result.err) == (
                3, f"synth: error: {store}: cannot write the store: Read-only file system; nothing was written\n"
            ), command
        assert tree(store) == before


@pytest.mark.parametrize("command", [
    ("import", "hubble", str(ENVELOPE)), ("edges",), ("store", "info"), ("store", "check"), ("compact",),
    ("store", "prune", "--before", "2026-11-21"),
])
def test_a_store_path_that_is_a_file_is_one_line(
    command: tuple[str, ...], tmp_path: Path, synth: Callable[..., Run]
) -> None:
    path = tmp_path / "flows.json"
    path.write_text("{}\n")
    result = synth(*command, "--store", path)
    assert (result.code, result.err) == (
        3, f"synth: error: {path}: is a file, not a store folder; check --store or $SYNTH_STORE\n"
    )
    assert path.read_text() == "{}\n"


def test_a_store_of_a_newer_schema_version_is_refused_before_anything_is_read_or_written(
    tmp_path: Path, synth: Callable[..., Run]
) -> None:
    store = tmp_path / "store"
    assert synth("import", "hubble", ENVELOPE, "--store", store).code == 0
    (stored,) = (store / "flows").rglob("*.parquet")
    table = pq.read_table(stored)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, VERSION_KEY: b"4"}), stored)
    (store / "store.json").write_text(json.dumps({"schema_version": 4}))
    before = tree(store)
    read = synth("edges", "--store", store)
    assert (read.code, read.err) == (3, (
        f"synth: error: {stored}: written by a newer synth (store schema version 4); this one reads versions 1, 2, 3: "
        "upgrade synth to read this store\n"))
    write = synth("import", "hubble", HUBBLE, "--store", store)
    assert (write.code, write.err) == (3, (
        f"synth: error: {store}: written by a newer synth (store schema version 4); this one writes version 3: "
        "upgrade synth, or use another --store\n"))
    assert tree(store) == before


def test_an_import_while_generate_reads_is_seen_whole_or_not_at_all(
    tmp_path: Path, synth: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate reads the store several times (edges, replay, window, sources): all of them see one snapshot."""
    even, odd = _halves(tmp_path)
    store = tmp_path / "store"
    assert synth("import", "hubble", even, "--store", store).code == 0
    quiet = tmp_path / "quiet"
    shutil.copytree(store, quiet)
    # The PR text names the output folder and the store: the same words in each run.
    for run, target in (("expected", quiet), ("during", store), ("after", store)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "flows").symlink_to(target)
    monkeypatch.chdir(tmp_path / "expected")
    expected = synth("generate", "-n", "shop", "--out", "policies", "--pr", "--store", "flows")
    assert expected.code == 0, expected.err

    real = Store.read_file
    imported: list[int] = []

    def read_then_import(self: Store, *args: object, **kwargs: object) -> object:
        if not imported:  # the first file generate reads: another process commits an import now
            from synth.app.ingest import import_files
            imported.extend(r.flows for r in import_files(Store(str(store)), "hubble", [str(odd)]))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "read_file", read_then_import)
    monkeypatch.chdir(tmp_path / "during")
    during = synth("generate", "-n", "shop", "--out", "policies", "--pr", "--store", "flows")
    assert during.code == 0, during.err
    assert imported == [6_599]
    assert tree(tmp_path / "during") == tree(tmp_path / "expected")
    monkeypatch.setattr(Store, "read_file", real)
    monkeypatch.chdir(tmp_path / "after")
    after = synth("generate", "-n", "shop", "--out", "policies", "--pr", "--store", "flows")
    assert after.code == 0
    assert tree(tmp_path / "after") != tree(tmp_path / "expected")  # the import is seen by the next command


def test_a_reader_skips_the_files_a_running_compaction_replaced(
    tmp_path: Path, synth: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the moment the compacted file is in place and the old ones are deleted, readers count each row once."""
    even, odd = _halves(tmp_path)
    store = tmp_path / "store"
    assert synth("import", "hubble", even, odd, "--store", store).code == 0
    seen: list[int] = []
    real = dataset.delete_files

    def count_then_delete(fs: object, paths: list[str]) -> None:
        if paths and paths[-1].endswith(".parquet"):
            seen.append(_flows(store))
        real(fs, paths)  # type: ignore[arg-type]

    monkeypatch.setattr(dataset, "delete_files", count_then_delete)
    assert synth("compact", "--older-than", "2026-11-22", "--store", store).code == 0
    assert seen and set(seen) == {13_200}
