"""Real small filesystems for the fault tests: a tmpfs of a few hundred kilobytes fills up for real.

Mounting needs root (CI runs as root); where the mount is refused the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` mounted at `path` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def read_only(path: Path) -> None:
    """Remount the tmpfs at `path` read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(path: Path, leave_bytes: int) -> Path:
    """Take all free space of the filesystem at `path` but `leave_bytes` (rounded to its blocks)."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    filler = path / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (None) under `root`, by relative path."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if path.name == "filler":
            continue
        found[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else None
    return found
