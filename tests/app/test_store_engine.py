"""The embedded engine (DuckDB over the whole window) gives what the per-batch path gives on the same
flows: the same edges, identities, names, pod labels and counts, and the same observed pairs, on the
sample, the generated apps and the real captures beside the checkout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, shared_captures

from synth.app.flows import aggregate_store, observe_store
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.aggregate import FLOW_COLUMNS, HTTP_COLUMNS, EdgeSet, aggregate_batches
from synth.policy.observed import OBSERVED_COLUMNS, Observed, observe_batches
from synth.store.dataset import VERSION_KEY, Store
from synth.store.schema import ADDED_COLUMNS

DAY_NS = 86_400 * 10**9


def _generated_apps(out: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location("gen_flows", ROOT / "scripts" / "gen_flows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_flows"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    module.write_apps(out)
    return sorted(out.glob("*.json"))


def assert_same_edges(engine: EdgeSet, batches: EdgeSet) -> None:
    assert engine.table.equals(batches.table)
    assert engine.edges == batches.edges
    assert engine.identities == batches.identities
    assert engine.names == batches.names
    assert engine.pod_labels == batches.pod_labels
    assert engine.stats == batches.stats


def assert_same_observed(engine: Observed, batches: Observed) -> None:
    assert_same_edges(engine.edges, batches.edges)
    assert engine.pairs == batches.pairs


def check_parity(store: Store) -> None:
    settings = Settings()
    engine, batches = aggregate_store(store, settings), aggregate_batches(store.read(FLOW_COLUMNS), settings)
    assert engine.table.num_rows > 0
    assert_same_edges(engine, batches)
    assert_same_observed(observe_store(store, settings), observe_batches(store.read(OBSERVED_COLUMNS), settings))
    first = engine.stats.first_ns
    assert first is not None
    middle = (first + (engine.stats.last_ns or first)) // 2
    namespace = next(e.src.namespace for e in engine.edges if e.src.kind == "pod")
    window = {"since_ns": first + 1, "until_ns": middle}
    assert_same_edges(
        aggregate_store(store, settings, namespaces=[namespace or ""], **window),  # type: ignore[arg-type]
        aggregate_batches(store.read(FLOW_COLUMNS, **window), settings, namespaces=[namespace or ""]),  # type: ignore[arg-type]
    )


def test_engine_agrees_with_the_batches_on_the_sample(sample_store: Path) -> None:
    check_parity(Store(str(sample_store)))


@pytest.mark.slow
def test_engine_agrees_with_the_batches_on_the_generated_apps(tmp_path: Path) -> None:
    for capture in _generated_apps(tmp_path / "apps"):
        store = Store(str(tmp_path / f"store-{capture.stem}"))
        import_files(store, "hubble", [str(capture)])
        check_parity(store)


@pytest.mark.slow
def test_engine_agrees_with_the_batches_on_the_real_captures(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(p) for p in shared_captures()])
    check_parity(store)


def test_label_maps_become_ids_without_strings_per_row() -> None:
    from synth.core.aggregate import LabelSets

    labels = pa.array(
        [[("app", "a"), ("tier", "web")], [], None, [("app", "a"), ("tier", "web")], [("app", None)], [("app", "b")]],
        pa.map_(pa.string(), pa.string()),
    )
    sets = LabelSets()
    assert sets.encode(labels).to_pylist() == [1, 0, 0, 1, 0, 2]
    assert sets.encode(labels.slice(4)).to_pylist() == [0, 2]
    assert sets.keys == ["", "app=a\x1ftier=web", "app=b"]
    assert sets.labels["app=a\x1ftier=web"] == (("app", "a"), ("tier", "web"))


def test_an_empty_window_inside_stored_hours_gives_no_edges(sample_store: Path) -> None:
    store = Store(str(sample_store))
    first = aggregate_store(store, Settings()).stats.first_ns
    assert first is not None
    empty = aggregate_store(store, Settings(), since_ns=first - 1, until_ns=first)
    assert empty.edges == () and empty.stats.flows == 0


def test_many_small_files_of_two_schema_versions_give_the_same_edges(sample_store: Path, tmp_path: Path) -> None:
    """A collection writes a small file per flush, so an hour can hold dozens; the engine reads small files
    into one batch together. Split every stored file into small ones, every other one written as version 2
    (no HTTP columns), and the engine still gives what it gives on the store as imported."""
    settings = Settings()
    for stored in Store(str(sample_store)).files():
        target = tmp_path / Path(stored.path).relative_to(sample_store)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(stored.path)
        step = max(1, table.num_rows // 7)
        for part, start in enumerate(range(0, table.num_rows, step)):
            piece = table.slice(start, step)
            if part % 2:
                piece = piece.drop_columns(list(ADDED_COLUMNS[3]))
                piece = piece.replace_schema_metadata({**piece.schema.metadata, VERSION_KEY: b"2"})
            pq.write_table(piece, target.with_suffix(f".{part}.parquet"))
    split, whole = Store(str(tmp_path)), Store(str(sample_store))
    assert len(split.files()) > 5 * len(whole.files())
    assert_same_edges(aggregate_store(split, settings), aggregate_store(whole, settings))
    assert_same_observed(observe_store(split, settings), observe_store(whole, settings))
    with_http = observe_store(split, settings, http=True)
    assert with_http.pairs == observe_batches(split.read([*OBSERVED_COLUMNS, *HTTP_COLUMNS]), settings).pairs
