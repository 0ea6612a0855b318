"""The Parquet store: partitions, metadata, schema versions, atomic imports."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, Run

from synth.app.ingest import import_files
from synth.base.errors import StoreError
from synth.store.dataset import FACTS_KEY, VERSION_KEY, Store
from synth.store.schema import FILE_SCHEMA, SCHEMA_VERSION

ENVELOPE = FIXTURES / "hubble" / "envelope.json"


def test_hive_partitions_and_metadata(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    import_files(store, "hubble", [str(ENVELOPE)])
    files = store.files()
    assert files and all("/flows/source=hubble/date=2026-11-20/hour=" in f.path for f in files)
    parquet = pq.ParquetFile(files[0].path)
    metadata = parquet.schema_arrow.metadata
    assert metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
    facts = json.loads(metadata[FACTS_KEY])
    assert facts["source"] == "hubble" and facts["input"].endswith("envelope.json")
    assert parquet.schema_arrow.remove_metadata().equals(FILE_SCHEMA.remove_metadata())  # no `source` inside
    (entry,) = store.imports()
    assert entry.flows == 5 and entry.facts["lost_events"] == 424
    assert facts["import"] == entry.id and len(entry.sha256) == 64


def test_window_reads_only_the_hours_asked_for(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    import_files(store, "hubble", [str(ENVELOPE)])
    times = [t for b in store.read(["time"]) for t in b.column("time").to_pylist()]
    assert len(times) == 5
    assert list(store.read(["time"], since_ns=2_000_000_000 * 10**9)) == []


def test_an_older_schema_version_is_refused_with_a_hint(tmp_path: Path, synth: Callable[..., Run]) -> None:
    directory = tmp_path / "flows" / "source=hubble" / "date=2026-11-20" / "hour=10"
    directory.mkdir(parents=True)
    table = pa.table({"time": pa.array([0], pa.timestamp("ns", tz="UTC"))})
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"0"}), directory / "part-old.parquet")
    with pytest.raises(StoreError, match="schema version 0, this synth reads versions 1, 2, 3;"):
        list(Store(str(tmp_path)).read())
    result = synth("edges", "--store", tmp_path)
    assert result.code == 3 and "import the flows again" in result.err


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    good = ENVELOPE.read_text().splitlines()[0]
    path = tmp_path / "f.json"
    path.write_text((good + "\n") * 300 + "not json at all\n")
    with pytest.raises(Exception, match="not valid JSON"):
        import_files(store, "hubble", [str(path)], strict=True)
    assert store.files() == [] and store.imports() == []
    staging = tmp_path / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_a_committed_but_unmoved_import_is_finished_and_an_uncommitted_one_dropped(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    writer = store.staged({"source": "hubble"})
    batch = next(iter(_batches()))
    writer.write(batch)
    writer.flush()  # files exist in staging, no ledger entry: a crash now loses the import
    store.recover()
    assert store.files() == []
    committed = store.staged({"source": "hubble"})
    committed.write(batch)
    committed.flush()
    store._write_ledger(_entry(committed.import_id))  # crash after the ledger, before the moves
    store.recover()
    assert sum(b.num_rows for b in store.read()) == batch.num_rows


def test_ctrl_c_during_the_commit_takes_effect_once_the_import_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(str(tmp_path))
    writer = store.staged({"source": "hubble"})
    batch = next(iter(_batches()))
    writer.write(batch)
    write_ledger = store._write_ledger

    def interrupted(entry):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the ledger entry and the moves
        write_ledger(entry)

    monkeypatch.setattr(store, "_write_ledger", interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in `synth import`
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.commit(input_name="x", sha256="0" * 64, size=1, mtime_ns=1, facts={})
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [e.id for e in store.imports()] == [writer.import_id]
    assert sum(b.num_rows for b in store.read()) == batch.num_rows
    assert not (tmp_path / ".staging" / writer.import_id).exists()


def _batches() -> list[pa.RecordBatch]:
    from synth.sources.hubble.files import HubbleFileSource
    from synth.sources.reader import InputFile

    with InputFile(str(ENVELOPE)) as input_file:
        return list(HubbleFileSource(input_file).batches())


def _entry(import_id: str):  # type: ignore[no-untyped-def]
    from synth.store.dataset import ImportEntry

    return ImportEntry(
        id=import_id,
        input="x",
        sha256="0" * 64,
        size=1,
        mtime_ns=1,
        flows=5,
        imported_at="2026-11-23T00:00:00+00:00",
        facts={},
    )
