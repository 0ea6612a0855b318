"""What both collectors share: the window checks, stop requests, and the clean-up after a killed writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from synth.app.ingest import import_files
from synth.base.errors import UsageError
from synth.collect.calico import CalicoOptions
from synth.collect.hubble import CollectOptions
from synth.collect.loop import check_window, remove_stale_temporaries
from synth.collect.stop import StopRequest
from synth.store.dataset import Store


@pytest.mark.parametrize("options_type", [CollectOptions, CalicoOptions])
def test_windows_that_cannot_be_collected_are_usage_errors(options_type: type) -> None:
    live = options_type(server="x", duration_s=10.0)
    assert check_window(live, None, None, follow=False) is True
    assert check_window(options_type(server="x"), 1, 2, follow=False) is False
    with pytest.raises(UsageError, match="--until ends a recorded window"):
        check_window(live, None, 5, follow=False)
    with pytest.raises(UsageError, match="--until must be later than --since"):
        check_window(options_type(server="x"), 5, 5, follow=False)
    with pytest.raises(UsageError, match="must be positive"):
        check_window(options_type(server="x", flush_flows=0), None, None, follow=False)


def test_a_stop_request_wakes_the_collection_it_is_attached_to() -> None:
    woken: list[str] = []
    stop = StopRequest()
    stop.attach(lambda: woken.append("first"))
    assert not woken and not stop.is_set()
    stop.set()
    assert woken == ["first"] and stop.is_set()
    stop.attach(None)  # the collection ended: a later set() wakes nothing
    stop.set()
    assert woken == ["first"]
    stop.attach(lambda: woken.append("late"))  # set before the collection started: it stops at once
    assert woken == ["first", "late"]


def test_half_written_flows_and_identities_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    """A writer killed mid-file leaves `.NAME.tmp` beside the flows or beside their identities: both go, the
    stored files stay."""
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(FIXTURES / "hubble" / "envelope.json")])
    stored = sorted(p for p in (tmp_path / "store").rglob("*.parquet"))
    assert any("/ids/" in str(p) for p in stored) and any("/flows/" in str(p) for p in stored)
    left = [p.parent / f".part-killed-{i}.parquet.tmp" for i, p in enumerate(stored)]
    for path in left:
        path.write_bytes(b"PAR1 half")
    remove_stale_temporaries(store)
    assert not [path for path in left if path.exists()]
    assert sorted(p for p in (tmp_path / "store").rglob("*.parquet")) == stored
