"""One writer per store: imports, compaction and collection take `<store>/writer.lock` exclusively.

Two writers at once would both stage and commit the same input, or compact files another one is
still adding to; so the second one is refused at once with a message that names the holder (pid,
host, command, since when), which the holder writes into the lock file. On a local disk the lock
is an `flock`: the kernel releases it when its process ends however it ends, so a killed writer
never leaves the store locked.

An object store has no locks, so there the lock is an object (`writer.lock`) that names its holder
and a token, refreshed every few seconds. A writer that finds a fresh one is refused; one that finds
none (or one not refreshed for `LEASE_S`: its holder died) writes its own, waits `SETTLE_S` and
reads it back: of two writers that started at once only the one whose object stayed goes on. A
lock whose holder was a process of this host that is gone is taken over at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from synth.base.errors import StoreError
from synth.store.faults import write_failure

if TYPE_CHECKING:
    from synth.store.dataset import Store

LOCK_NAME = "writer.lock"
LEASE_S = 60.0  # an object-store lock not refreshed for this long belongs to a writer that died
HEARTBEAT_S = 10.0
SETTLE_S = 0.2  # longer than the time between reading the lock and writing it


def current_command() -> str:
    """This process's command line as a user typed it (`synth import hubble flows.json`)."""
    return shlex.join(["synth", *sys.argv[1:]])


def writer_lock(store: Store, command: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Hold the store's writer lock for the block, or raise StoreError naming who holds it."""
    if store.renames:
        return _file_lock(store.root_text, store.root, command)
    return _object_lock(store, command)


def _holding(command: str | None) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or current_command(),
        "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _refused(root_text: str, holder: str) -> StoreError:
    return StoreError(
        f"{root_text}: the store is being written by {holder}; wait for it to finish, or use another --store"
    )


@contextlib.contextmanager
def _file_lock(root_text: str, root: str, command: str | None) -> Iterator[None]:
    directory = Path(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK_NAME).open("a+")
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"{root_text}: is a file, not a store folder; check --store or $SYNTH_STORE") from None
    except OSError as e:
        raise write_failure(root_text, e, "nothing was written") from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise _refused(root_text, _holder(handle.read())) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holding(command), sort_keys=True) + "\n")
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


@contextlib.contextmanager
def _object_lock(store: Store, command: str | None) -> Iterator[None]:
    path = f"{store.root}/{LOCK_NAME}"
    current = _read_object(store.fs, path)
    if current is not None and time.time() - _number(current.get("heartbeat")) < LEASE_S and not _died(current):
        raise _refused(store.root_text, _holder(json.dumps(current)))
    mine = {**_holding(command), "token": uuid.uuid4().hex, "heartbeat": time.time()}
    _write_object(store.fs, path, mine)
    time.sleep(SETTLE_S)
    current = _read_object(store.fs, path)
    if current is None or current.get("token") != mine["token"]:
        raise _refused(store.root_text, _holder(json.dumps(current or {})))
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store.fs, path, mine, stop), name="lock-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        current = _read_object(store.fs, path)
        if current is not None and current.get("token") == mine["token"]:
            store.fs.delete_file(path)


def _died(holder: dict[str, object]) -> bool:
    """Whether the holder was a process of this host that is gone (killed: its lock need not expire)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _heartbeat(fs: pafs.FileSystem, path: str, mine: dict[str, object], stop: threading.Event) -> None:
    """Refresh the lock object while the writer runs (a dead writer's lock expires after LEASE_S)."""
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            _write_object(fs, path, {**mine, "heartbeat": time.time()})


def _read_object(fs: pafs.FileSystem, path: str) -> dict[str, object] | None:
    try:
        with fs.open_input_stream(path) as stream:
            value = json.loads(stream.read())
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_object(fs: pafs.FileSystem, path: str, value: dict[str, object]) -> None:
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(value, sort_keys=True).encode())


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
