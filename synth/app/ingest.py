"""Import flow files into the store, each file as one all-or-nothing import.

A file already imported (same bytes, or same path, size and mtime) is skipped unless forced; a
flow already stored (by any import or collection, from any file or format) is not stored again,
forced or not (`synth.store.identity`). Flows are staged while the file is read and committed only
once it was read to the end, so a bad file, an interrupted import or a duplicate leaves the store
exactly as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from synth.base.errors import InputError
from synth.sources import registry
from synth.sources.interface import Skip, SourceStats
from synth.sources.reader import InputFile
from synth.store.dataset import ImportEntry, Store
from synth.store.faults import write_failure


@dataclass(frozen=True, slots=True)
class FileReport:
    """What importing one input did."""

    input: str
    status: str  # "imported" or "duplicate"
    flows: int
    records: int
    skipped: int
    skips: tuple[Skip, ...]
    lost_events: int
    other_events: tuple[tuple[str, int], ...]
    first_ns: int | None
    last_ns: int | None
    duplicate_of: ImportEntry | None = None
    already_stored: int = 0  # flows of the input the store held already (not stored again)


def import_files(
    store: Store,
    source_name: str,
    paths: Sequence[str],
    *,
    strict: bool = False,
    force: bool = False,
    on_batch: Callable[[str, SourceStats, int, int], None] | None = None,
    **options: object,
) -> list[FileReport]:
    """Import each path (`-` is stdin) with the named source; stops at the first hard error."""
    source_class = registry.file_source(source_name)
    for path in paths:
        if path != "-" and not Path(path).exists():
            raise InputError(f"{path}: no such file")
    reports = []
    with store.writing():
        for path in paths:
            try:
                reports.append(_import_one(store, source_class, path, strict=strict, force=force, on_batch=on_batch,
                                           options=options))
            except OSError as e:  # input errors are InputErrors: this is the store
                before = "; the files before it are imported" if reports else ""
                raise write_failure(store.root_text, e, f"nothing of {path} was stored{before}") from e
    return reports


def _import_one(
    store: Store,
    source_class: registry.FileSourceClass,
    path: str,
    *,
    strict: bool,
    force: bool,
    on_batch: Callable[[str, SourceStats, int, int], None] | None,
    options: dict[str, object],
) -> FileReport:
    name, size, mtime_ns = "-", 0, 0
    if path != "-":
        stat = Path(path).stat()
        name, size, mtime_ns = os.path.realpath(path), stat.st_size, stat.st_mtime_ns
        if not force:
            previous = store.find_import(input_name=name, size=size, mtime_ns=mtime_ns)
            if previous is not None:
                return _duplicate(path, previous)
    with InputFile(path) as input_file:
        source = source_class(input_file, strict=strict, **options)
        writer = store.staged(source.facts())
        try:
            for batch in source.batches():
                writer.write(batch)
                if on_batch is not None:
                    on_batch(input_file.display, source.stats, input_file.bytes_read, size)
            stats = source.stats
            if stats.flows == 0 and stats.skipped:
                first = stats.skips[0] if stats.skips else None
                raise InputError(
                    f"{input_file.display}: no flow could be read ({stats.skipped} records skipped"
                    + (f"; first: {first}" if first else "")
                    + ")"
                )
            digest = input_file.sha256
            if not force:
                previous = store.find_import(sha256=digest)
                if previous is not None:
                    writer.discard()
                    return _duplicate(input_file.display, previous)
            writer.commit(
                input_name=name,
                sha256=digest,
                size=size or input_file.bytes_read,
                mtime_ns=mtime_ns,
                facts={"source": source.name, **_facts(stats)},
            )
        except BaseException:
            writer.discard()
            raise
    return FileReport(
        input=input_file.display,
        status="imported",
        flows=stats.flows - writer.duplicates,
        records=stats.records,
        skipped=stats.skipped,
        skips=tuple(stats.skips),
        lost_events=stats.lost_events,
        other_events=tuple(sorted(stats.other_events.items())),
        first_ns=stats.first_time_ns,
        last_ns=stats.last_time_ns,
        already_stored=writer.duplicates,
    )


def _facts(stats: SourceStats) -> dict[str, object]:
    return {
        "records": stats.records,
        "flows": stats.flows,
        "skipped": stats.skipped,
        "lost_events": stats.lost_events,
        "lost_by_node": dict(sorted(stats.lost_by_node.items())),
        "other_events": dict(sorted(stats.other_events.items())),
        "first_ns": stats.first_time_ns,
        "last_ns": stats.last_time_ns,
    }


def _duplicate(display: str, previous: ImportEntry) -> FileReport:
    return FileReport(
        input=display,
        status="duplicate",
        flows=0,
        records=0,
        skipped=0,
        skips=(),
        lost_events=0,
        other_events=(),
        first_ns=None,
        last_ns=None,
        duplicate_of=previous,
    )
