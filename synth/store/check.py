"""`synth store check` and `synth store prune`: find damaged files, set them aside, drop old hours.

A partial copy or bit rot makes one file unreadable, and every command that reads the store then
refuses (exit 3) naming it. `check_store` reads every flow file and every identity file through to
the end and lists the ones that fail; with `quarantine` it moves them (a flow file with the
identities of its flows, so they stay a pair) to `quarantine/` under the store, out of every read,
through the store's own atomic replace. The import ledger is left as it is: it still records which
inputs were imported, and importing such an input again with `--force` stores exactly the flows
that were set aside (the others are recognised as stored).

`prune_store` removes whole hours that ended before a time, the same atomic way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from synth.base.errors import StoreError
from synth.store.dataset import ImportEntry, Store, StoredFile
from synth.store.faults import write_failure
from synth.store.files import read_ids

_NS_PER_HOUR = 3_600_000_000_000
QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class BadFile:
    """A file of the store that cannot be read, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What `check_store` found (and, with quarantine, moved): bad files, and the imports they came from."""

    files: int
    bad: tuple[BadFile, ...]
    moved_to: str | None
    imports: tuple[ImportEntry, ...]


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What `prune_store` removed."""

    hours: int
    files: int
    bytes: int


def check_store(store: Store, *, quarantine: bool = False,
                progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Read every file of the store to the end; with `quarantine`, move the bad ones aside."""
    store.refuse_file()
    if not store.exists():
        raise StoreError(f"{store.root_text}: no store here; check --store or $SYNTH_STORE")
    if quarantine:
        with store.writing():
            store.recover()
            return _check(store, quarantine, progress)
    return _check(store, quarantine, progress)


def _check(store: Store, quarantine: bool, progress: Callable[[int, int], None] | None) -> CheckReport:
    files = store.files()
    bad = []
    for position, stored in enumerate(files):
        if progress is not None:
            progress(position, len(files))
        reason = _damage(store, stored)
        if reason is not None:
            bad.append(BadFile(stored.path, reason))
    moved_to = None
    if quarantine and bad:
        moved_to = store._path(QUARANTINE)
        try:
            _set_aside(store, [b.path for b in bad])
        except OSError as e:
            raise write_failure(store.root_text, e, "nothing was moved") from e
    names = {b.path.rsplit("/", 1)[1].split("-")[1] for b in bad}
    imports = tuple(e for e in store.imports() if e.id in names)
    return CheckReport(len(files), tuple(bad), moved_to, imports)


def _damage(store: Store, stored: StoredFile) -> str | None:
    """Why a flow file (or the identities of its flows) cannot be read, or None."""
    try:
        for _batch in store.read_file(stored):
            pass
        ids = store.ids_path(stored)
        if store.fs.get_file_info(ids).type == pafs.FileType.File:
            read_ids(store.fs, [ids])
    except StoreError as e:
        return str(e).split(": ", 1)[1]
    except (OSError, pa.ArrowInvalid) as e:
        return f"not a readable Parquet file ({e})"
    return None


def _set_aside(store: Store, paths: list[str]) -> None:
    """Copy each bad file (and its identities) under quarantine/, then remove them from the store at once."""
    moved = []
    for path in paths:
        ids = store.ids_dir + path[len(store.flows_dir):]
        for source in (path, ids):
            if store.fs.get_file_info(source).type != pafs.FileType.File:
                continue
            target = store._path(QUARANTINE, store.relative(source))
            store.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            store.fs.copy_file(source, target)
            moved.append(source)
    store.replace(moved)


def prune_store(store: Store, before_ns: int) -> PruneReport:
    """Remove every hour that ended at or before `before_ns` (its flows and their identities), atomically."""
    store.refuse_file()
    if not store.exists():
        raise StoreError(f"{store.root_text}: no store here; check --store or $SYNTH_STORE")
    with store.writing():
        store.recover()
        old = [f for f in store.files() if f.hour_start_ns + _NS_PER_HOUR <= before_ns]
        size = sum(store.size(f) for f in old)
        ids = [p for p in (store.ids_path(f) for f in old) if store.fs.get_file_info(p).type == pafs.FileType.File]
        try:
            store.replace([*ids, *(f.path for f in old)])
        except OSError as e:
            raise write_failure(store.root_text, e, "nothing was removed") from e
    return PruneReport(len({(f.source, f.hour_start_ns) for f in old}), len(old), size)
