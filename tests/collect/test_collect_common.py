"""The window checks both collectors share."""

from __future__ import annotations

import pytest

from synth.base.errors import UsageError
from synth.collect.calico import CalicoOptions
from synth.collect.hubble import CollectOptions
from synth.collect.loop import check_window
from synth.collect.stop import StopRequest


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
