"""The same flow is stored once, however it arrives: again, from stdin, gzip or plain, two exports of one cluster."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import ROOT, Run

from synth.store.dataset import Store
from synth.store.identity import identities, occurrences
from synth.store.maintenance import compact_store
from synth.store.schema import FLOW_SCHEMA

SAMPLES = ROOT / "sample_flows"
HUBBLE = SAMPLES / "hubble-flows.json.gz"
FLOWLOG = SAMPLES / "calico-flows.log.gz"
ELASTIC = SAMPLES / "calico-es-export.json.gz"


def _flows(store: Path) -> int:
    return sum(int(pc.sum(b.column("count")).as_py() or 0) for b in Store(str(store)).read(["count"]))


@pytest.fixture(scope="module")
def hubble_flows(tmp_path_factory: pytest.TempPathFactory) -> int:
    from synth.cli import main

    store = tmp_path_factory.mktemp("once")
    assert main(["import", "hubble", str(HUBBLE), "--store", str(store)]) == 0
    return _flows(store)


def test_stdin_then_the_gzip_file_stores_each_flow_once(
    hubble_flows: int, tmp_path: Path, synth: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "flows.json"
    plain.write_bytes(gzip.decompress(HUBBLE.read_bytes()))
    store = tmp_path / "store"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plain.read_bytes())))
    first = synth("import", "hubble", "-", "--store", store)
    assert first.code == 0, first.err
    assert first.out.startswith("<stdin>: 13,200 flows imported, ")
    again = synth("import", "hubble", HUBBLE, plain, "--store", store)
    assert again.code == 0, again.err
    lines = [line for line in again.out.splitlines() if "flows imported" in line]
    assert lines == [
        f"{HUBBLE}: 0 flows imported (13,200 more already in the store), 2026-11-20T00:00:00Z .. 2026-11-20T23:56:39Z; "
        "3 lost_events not stored as flows",
    ]
    assert again.out.splitlines()[-1].startswith(f"{plain}: already imported on ")  # the bytes stdin had
    assert _flows(store) == hubble_flows == 13_200


def test_forced_reimport_and_compaction_keep_one_copy(hubble_flows: int, tmp_path: Path,
                                                      synth: Callable[..., Run]) -> None:
    assert synth("import", "hubble", HUBBLE, "--store", tmp_path).code == 0
    report = compact_store(Store(str(tmp_path)))
    assert report.hours == 0  # already one compacted file per hour: compaction has nothing to merge
    assert synth("import", "hubble", HUBBLE, "--store", tmp_path, "--force").code == 0
    assert _flows(tmp_path) == hubble_flows


def test_compaction_merges_the_identities_with_the_flows(tmp_path: Path, synth: Callable[..., Run]) -> None:
    plain = tmp_path / "half.json"
    lines = gzip.decompress(HUBBLE.read_bytes()).splitlines(keepends=True)
    plain.write_bytes(b"".join(lines[::2]))  # every other flow: each hour gets a second file below
    store = tmp_path / "store"
    assert synth("import", "hubble", plain, "--store", store).code == 0
    assert synth("import", "hubble", HUBBLE, "--store", store).code == 0
    before = _flows(store)
    report = compact_store(Store(str(store)))
    assert report.hours == 24 and report.files_after == 24
    ids = sorted(p.name for p in (store / "ids").rglob("*.parquet"))
    assert ids == sorted(p.name for p in (store / "flows").rglob("*.parquet"))
    result = synth("import", "hubble", HUBBLE, "--store", store, "--force")
    assert "0 flows imported (13,200 more already in the store)" in result.out
    assert _flows(store) == before == 13_200


@pytest.mark.parametrize("order", [(FLOWLOG, ELASTIC), (ELASTIC, FLOWLOG)])
def test_flows_log_and_the_elasticsearch_export_of_one_cluster_count_once(
    order: tuple[Path, Path], tmp_path: Path, synth: Callable[..., Run]
) -> None:
    alone = tmp_path / "alone"
    assert synth("import", "calico", FLOWLOG, "--store", alone).code == 0
    both = tmp_path / "both"
    first = synth("import", "calico", order[0], "--store", both)
    second = synth("import", "calico", order[1], "--store", both)
    assert first.code == second.code == 0, (first.err, second.err)
    assert _flows(both) == _flows(alone) == 6_111
    if order[0] == FLOWLOG:
        assert "0 flows imported (238 more already in the store)" in second.out


def test_calico_records_that_differ_only_by_node_are_distinct_records() -> None:
    """The node's flows.log has no `host`: two nodes' records of one workload pair then agree on every column."""
    row = dict.fromkeys(FLOW_SCHEMA.names) | {
        "time": 0, "count": 3, "source": "calico", "verdict": "forwarded", "direction": "egress",
        "protocol": "TCP", "src_kind": "pod", "dst_kind": "pod", "dst_port": 80,
    }
    table = pa.Table.from_pylist([row, row, {**row, "count": 4}], schema=FLOW_SCHEMA)
    ids = identities(table, "calico")
    assert occurrences(ids).tolist() == [0, 1, 0]
    with_node = pa.Table.from_pylist([{**row, "node": "a"}], schema=FLOW_SCHEMA)
    assert identities(with_node, "calico").equals(identities(table.slice(0, 1), "calico"))
    assert not identities(with_node, "hubble").equals(identities(table.slice(0, 1), "hubble"))


def test_a_flow_seen_twice_in_one_import_is_stored_once_even_after_its_hour_left_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("synth.store.seen._PARTITIONS_KEPT", 1)
    hour = 3_600_000_000_000
    row = dict.fromkeys(FLOW_SCHEMA.names) | {
        "count": 1, "source": "hubble", "verdict": "forwarded", "direction": "egress", "protocol": "TCP",
        "src_kind": "pod", "dst_kind": "pod", "dst_port": 80, "node": "node-a",
    }
    store = Store(str(tmp_path))
    writer = store.staged({"source": "hubble"})
    for time in (0, hour, 2 * hour, 5):  # hour 0 is written, pushed out of memory by hours 1 and 2, then met again
        writer.write(pa.RecordBatch.from_pylist([row | {"time": time}, row | {"time": 0}], schema=FLOW_SCHEMA))
        writer.flush()
    writer.commit(input_name="x", sha256="0" * 64, size=1, mtime_ns=0, facts={})
    assert _flows(tmp_path) == 4 and writer.duplicates == 4
