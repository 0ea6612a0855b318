"""Progress shows on a terminal and stays out of pipes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from conftest import SAMPLE_FLOWS, Run

from synth.cli.progress import Progress


def test_progress_line_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=True, interval=0)
    progress.update(flows=12_000, files=(1, 2), done_bytes=50, total_bytes=100, last_ns=1763596800 * 10**9)
    progress.done()
    text = stream.getvalue()
    assert "\r" in text and "file 1/2" in text and "12,000 flows" in text and "ETA" in text
    assert "2025-11-20T00:00:00Z" in text


def test_quiet_when_not_a_terminal(tmp_path: Path, synth: Callable[..., Run]) -> None:
    assert Progress(io.StringIO()).enabled is False
    result = synth("import", "hubble", *SAMPLE_FLOWS, "--store", tmp_path)
    assert result.code == 0 and "\r" not in result.err and "\r" not in result.out
