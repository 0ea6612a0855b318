"""One writer per store: imports, compaction and collection take `<store>/writer.lock` exclusively.

Two writers at once would both stage and commit the same input, or compact files another one is
still adding to; so the second one is refused at once with a message that names the holder (pid,
host, command, since when), which the holder writes into the lock file. The lock is an `flock`:
the kernel releases it when its process ends however it ends, so a killed writer never leaves the
store locked. It works for local stores only; for `s3://...` stores nothing prevents two writers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from synth.base.errors import StoreError

LOCK_NAME = "writer.lock"


def current_command() -> str:
    """This process's command line as a user typed it (`synth import hubble flows.json`)."""
    return shlex.join(["synth", *sys.argv[1:]])


@contextlib.contextmanager
def writer_lock(root_text: str, root: str, command: str | None = None) -> Iterator[None]:
    """Hold the store's writer lock for the block, or raise StoreError naming who holds it.

    `root_text` is the store as the user named it (for messages), `root` its resolved path.
    """
    if "://" in root_text:
        yield
        return
    directory = Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOCK_NAME).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise StoreError(
                f"{root_text}: the store is being written by {_holder(handle.read())}; wait for it to finish, "
                "or use another --store"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or current_command(),
            "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }, sort_keys=True) + "\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(text: str) -> str:
    """`synth import hubble a.json` (pid 123 on host1, since 2026-11-21T13:00:00Z) from the lock file."""
    try:
        holder = json.loads(text)
        return f"`{holder['command']}` (pid {holder['pid']} on {holder['host']}, since {holder['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process (it started a moment ago)"
