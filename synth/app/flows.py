"""The store's flows into edges and observed pairs: the one place that reads flows for aggregation.

Aggregation itself (`synth.core.aggregate`) and the replay input (`synth.policy.observed`) do no
I/O. The embedded engine (`synth.app.engine`) groups the requested window of the store and hands
them the grouped rows; a store without flows in it is refused with a hint.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow.fs as pafs

from synth.app.engine import FileProgress, accumulate_store
from synth.base.config import Settings
from synth.base.errors import StoreError
from synth.core.aggregate import FLOW_COLUMNS, HTTP_COLUMNS, EdgeSet, finish
from synth.policy.observed import OBSERVED_COLUMNS, Observed, observe
from synth.store.dataset import Store


def require_flows(store: Store, since_ns: int | None, until_ns: int | None) -> None:
    """Refuse a missing store, an empty one, or a window with no flows, with what to do about it."""
    kind = store.fs.get_file_info(store.root).type
    if kind == pafs.FileType.NotFound:
        raise StoreError(
            f"{store.root_text}: no such store (nothing is there); check --store or $SYNTH_STORE, or import "
            "flows into it first with `synth import hubble FILE... --store PATH`"
        )
    if kind != pafs.FileType.Directory:
        raise StoreError(f"{store.root_text}: is a file, not a store folder; check --store or $SYNTH_STORE")
    if not store.files(since_ns, until_ns):
        if not store.files():
            raise StoreError(f"{store.root_text}: no flows stored yet; run `synth import hubble FILE...` first")
        raise StoreError(f"{store.root_text}: no flows stored in the requested time window")


def aggregate_store(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    on_file: FileProgress | None = None,
) -> EdgeSet:
    """The edges of the stored flows in the window (all namespaces when none are given); a missing
    or empty store is refused with what to do."""
    require_flows(store, since_ns, until_ns)
    window = {"namespaces": namespaces, "since_ns": since_ns, "until_ns": until_ns, "on_file": on_file}
    return finish(accumulate_store(store, FLOW_COLUMNS, **window), settings)  # type: ignore[arg-type]


def observe_store(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    http: bool = False,
) -> Observed:
    """Edges and the distinct endpoint pairs behind them, in one pass over the stored flows; a missing
    or empty store is refused with what to do. With `http`, each carries its HTTP requests too."""
    require_flows(store, since_ns, until_ns)
    columns = (*OBSERVED_COLUMNS, *HTTP_COLUMNS) if http else OBSERVED_COLUMNS
    accumulator = accumulate_store(store, columns, namespaces=namespaces, since_ns=since_ns, until_ns=until_ns)
    return observe(accumulator, settings)
