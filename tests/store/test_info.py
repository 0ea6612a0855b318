"""`synth store info`: imports from the ledger, sources, window, flows, files and size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from conftest import ROOT, Run

from synth.app.ingest import import_files
from synth.base.timeutil import format_ns
from synth.store.dataset import Store
from synth.store.info import store_info

SAMPLES = ROOT / "sample_flows"


def test_store_info_counts_what_the_files_and_the_ledger_hold(tmp_path: Path, synth: Callable[..., Run]) -> None:
    store = Store(str(tmp_path))
    hubble = import_files(store, "hubble", [str(SAMPLES / "hubble-flows.json.gz")])[0]
    calico = import_files(store, "calico", [str(SAMPLES / "calico-flows.log.gz")])[0]
    info = store_info(store)
    files = store.files()
    assert [s.source for s in info.sources] == ["calico", "hubble"]
    assert info.files == len(files) == sum(s.files for s in info.sources)
    assert info.rows == sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
    assert info.bytes == sum(Path(f.path).stat().st_size for f in files)
    by_source = {s.source: s for s in info.sources}
    assert by_source["hubble"].flows == hubble.flows == 13_200
    counts = [n for b in store.read(["count"], sources=["calico"]) for n in b.column("count").to_pylist()]
    assert by_source["calico"].flows == sum(counts) > len(counts)  # flows, not rows: Calico records count several
    assert info.flows == 13_200 + sum(counts)
    assert by_source["hubble"].first_ns == hubble.first_ns and by_source["hubble"].last_ns == hubble.last_ns
    assert info.first_ns == min(hubble.first_ns or 0, calico.first_ns or 0)
    assert [e.input for e in info.imports] == [str(SAMPLES / "hubble-flows.json.gz"),
                                               str(SAMPLES / "calico-flows.log.gz")]

    result = synth("store", "info", "--store", tmp_path)
    assert result.code == 0, result.err
    h, c = by_source["hubble"], by_source["calico"]
    imported = {e.input: e.imported_at for e in info.imports}
    calico_records = info.imports[1].flows
    assert result.out.splitlines() == [
        f"store: {tmp_path}",
        f"window: {format_ns(info.first_ns)} .. {format_ns(info.last_ns)}",
        f"flows: {info.flows:,} in {info.rows:,} rows",
        f"files: {info.files:,}, {info.bytes:,} bytes",
        "sources: 2",
        f"  calico: {c.flows:,} flows in {c.rows:,} rows, {c.files:,} files, {c.bytes:,} bytes, "
        f"{format_ns(c.first_ns)} .. {format_ns(c.last_ns)}",
        f"  hubble: 13,200 flows in {h.rows:,} rows, {h.files:,} files, {h.bytes:,} bytes, "
        f"{format_ns(h.first_ns)} .. {format_ns(h.last_ns)}",
        "imports: 2",
        f"  {imported[str(SAMPLES / 'hubble-flows.json.gz')]}  hubble  {SAMPLES / 'hubble-flows.json.gz'}: "
        "13,200 flow records",
        f"  {imported[str(SAMPLES / 'calico-flows.log.gz')]}  calico  {SAMPLES / 'calico-flows.log.gz'}: "
        f"{calico_records:,} flow records",
    ]


def test_store_info_of_no_store_is_an_error(tmp_path: Path, synth: Callable[..., Run]) -> None:
    result = synth("store", "info", "--store", tmp_path / "nothing")
    assert result.code == 3
    assert result.err == (
        f"synth: error: {tmp_path / 'nothing'}: no store here; run `synth import hubble FILE...` to create one\n"
    )
    assert not (tmp_path / "nothing").exists()
