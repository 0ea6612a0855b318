"""The flow store: a hive-partitioned Parquet dataset (`flows/source=S/date=D/hour=H/part-*.parquet`).

Files become visible atomically. On a local disk each is written under a dot-name and renamed
into place; on an object store (no atomic rename) each is written under its final name and made
visible by a commit record (`synth.store.commits`). Either way a reader never sees half a file or
half an import, and a crash loses at most what was in flight. Imports are staged and committed as
a whole through a ledger entry (`imports/<id>.json`), which is also how the same input is
recognised when it comes again; the same flow is recognised by its identity (`synth.store.identity`),
kept beside the flows in `ids/` under the same partition and file name. Every file carries the
schema version and the collection facts in its metadata; a file of another schema version is
refused, not misread. Any pyarrow filesystem works (`s3://bucket/prefix`); a plain path is the local disk.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from synth.base.errors import StoreError
from synth.store.commits import Commit, read_commits, visible_files, write_commit
from synth.store.faults import write_failure
from synth.store.files import (
    FACTS_KEY,
    ROW_GROUP_ROWS,
    VERSION_KEY,
    Writing,
    checked_batches,
    delete_files,
    file_table,
    publish_tree,
    read_ids,
    temporary_path,
    unreadable,
    write_file,
    write_ids,
)
from synth.store.lock import writer_lock
from synth.store.schema import ADDED_COLUMNS, FLOW_SCHEMA, READABLE_VERSIONS, SCHEMA_VERSION, SOURCES

if TYPE_CHECKING:
    from synth.store.writer import PartitionWriter, StagedWriter

_NS_PER_HOUR = 3_600_000_000_000
STORE_MARKER = "store.json"  # the store's schema version, so a newer store is refused before writing
@dataclass(frozen=True, slots=True)
class StoredFile:
    """One Parquet file of the store and the partition its path names."""

    path: str
    source: str
    hour_start_ns: int


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """A committed import: which input, which bytes, how many flows."""

    id: str
    input: str
    sha256: str
    size: int
    mtime_ns: int
    flows: int
    imported_at: str
    facts: dict[str, object]


class Store:
    """A flow store rooted at a local path or a pyarrow filesystem URI."""

    def __init__(self, root: str) -> None:
        self.root_text = root
        if "://" in root:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(root)
            except (pa.ArrowInvalid, OSError) as e:
                raise StoreError(f"{root}: cannot open the store: {e}") from e
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(root).resolve())
        self.root = self.root.rstrip("/")
        #: whether a rename is atomic here (a local disk); else commit records make files visible
        self.renames = isinstance(self.fs, pafs.LocalFileSystem)
        self._snapshot: list[StoredFile] | None = None
        self._ledger: list[ImportEntry] | None = None

    # ----- layout
    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def relative(self, path: str) -> str:
        """A path of the store relative to its root (`flows/source=.../part-....parquet`)."""
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    @property
    def flows_dir(self) -> str:
        """Where the committed Parquet files live."""
        return self._path("flows")

    @property
    def ids_dir(self) -> str:
        """Where the identities of the stored flows live, file for file (`synth.store.identity`)."""
        return self._path("ids")

    @contextlib.contextmanager
    def writing(self, command: str | None = None) -> Iterator[None]:
        """Hold the store's writer lock (`synth.store.lock`): imports, compaction and collection take it.

        A store written by a newer synth (its `store.json` says so) is refused before anything is written.
        """
        with writer_lock(self, command):
            self._claim_version()
            yield

    def _claim_version(self) -> None:
        marker = self._path(STORE_MARKER)
        try:
            with self.fs.open_input_stream(marker) as stream:
                version = int(json.loads(stream.read()).get("schema_version", 0))
        except FileNotFoundError:
            version = 0
        except (ValueError, AttributeError, TypeError) as e:
            raise StoreError(f"{marker}: not a store description ({e}); check --store or $SYNTH_STORE") from e
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.root_text}: written by a newer synth (store schema version {version}); this one writes "
                f"version {SCHEMA_VERSION}: upgrade synth, or use another --store"
            )
        if version < SCHEMA_VERSION:
            try:
                write_file(self.fs, marker, lambda out: out.write(
                    json.dumps({"schema_version": SCHEMA_VERSION}).encode()))
            except OSError as e:
                raise write_failure(self.root_text, e, "nothing was written") from e

    def pinned(self) -> Store:
        """This store as it is now: the committed files are listed once, and every read sees those.

        A command that reads the store several times (generate: edges, replay, window, sources)
        uses one, so an import that commits meanwhile is seen by all of its reads or by none.
        """
        snapshot = Store(self.root_text)
        ledger, moving = self.imports(), self._staged_ids()
        files = self._listing()
        # Imports committed while the files were listed, or still being moved into place, are left out
        # whole: their ledger entries and whichever of their files the listing met.
        late = {e.id for e in self.imports()} - {e.id for e in ledger}
        left_out = late | moving | self._staged_ids()
        snapshot._snapshot = [f for f in files if _writer_id(f.path) not in left_out]
        snapshot._ledger = [e for e in ledger if e.id not in left_out]
        return snapshot

    def _staged_ids(self) -> set[str]:
        staging = self._path(".staging")
        if not self.renames or self.fs.get_file_info(staging).type != pafs.FileType.Directory:
            return set()
        return {info.base_name for info in self.fs.get_file_info(pafs.FileSelector(staging))}

    def refuse_file(self) -> None:
        """StoreError when the store's path is a file (a mistyped --store), not a folder."""
        if self.fs.get_file_info(self.root).type == pafs.FileType.File:
            raise StoreError(f"{self.root_text}: is a file, not a store folder; check --store or $SYNTH_STORE")

    def exists(self) -> bool:
        """Whether anything was ever stored here."""
        return bool(self.fs.get_file_info(self.flows_dir).type == pafs.FileType.Directory)

    # ----- reading
    def files(
        self, since_ns: int | None = None, until_ns: int | None = None, sources: Sequence[str] | None = None
    ) -> list[StoredFile]:
        """Committed files whose hour overlaps [since, until), sorted by hour then path."""
        found = []
        for stored in self._snapshot if self._snapshot is not None else self._listing():
            if sources and stored.source not in sources:
                continue
            if since_ns is not None and stored.hour_start_ns + _NS_PER_HOUR <= since_ns:
                continue
            if until_ns is not None and stored.hour_start_ns >= until_ns:
                continue
            found.append(stored)
        return found

    def _listing(self) -> list[StoredFile]:
        """Every committed flow file, sorted by hour then path."""
        if self.renames:
            paths = self._listed(self.flows_dir)
        else:
            paths = sorted(self._path(p) for p in self.committed() if p.startswith("flows/"))
        found = [stored for stored in map(_parse_partition, paths) if stored is not None]
        found.sort(key=lambda f: (f.hour_start_ns, f.path))
        return found

    def _listed(self, directory: str) -> list[str]:
        """The visible Parquet files under a local directory (no dot-names, none a compaction replaced)."""
        if self.fs.get_file_info(directory).type != pafs.FileType.Directory:
            return []
        paths = [
            info.path for info in self.fs.get_file_info(pafs.FileSelector(directory, recursive=True))
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
        ]
        return sorted(set(paths) - self._replaced(directory, set(paths)))

    def _replaced(self, directory: str, listed: set[str]) -> set[str]:
        """Files an interrupted or running compaction replaced, once its new files are in `listed`."""
        journal = self._path(".compact-journal.json")
        try:
            with self.fs.open_input_stream(journal) as stream:
                entry = _journal_entry(json.loads(stream.read()))
        except (FileNotFoundError, ValueError):
            return set()
        finals = [final for _, final in entry.moves if final.startswith(directory + "/")]
        return set(entry.old) if all(final in listed for final in finals) else set()

    def committed(self) -> set[str]:
        """On an object store: the files (relative to the root) its commit records make visible."""
        return visible_files(read_commits(self.fs, self.root))

    def stored_ids(self, partition: str, committed: set[str] | None = None) -> pa.Table:
        """The identities of the committed flows of one partition (`source=S/date=D/hour=H`).

        On an object store `committed` (from `committed()`) saves reading the commit records again.
        """
        if self.renames:
            flows = set(self._listed(f"{self.flows_dir}/{partition}"))
            paths = [p for p in self._listed(f"{self.ids_dir}/{partition}")
                     if f"{self.flows_dir}/{partition}/{p.rsplit('/', 1)[1]}" in flows]
        else:
            prefix = f"ids/{partition}/"
            visible = committed if committed is not None else self.committed()
            paths = sorted(self._path(p) for p in visible if p.startswith(prefix))
        return read_ids(self.fs, paths)

    def ids_of(self, files: Sequence[StoredFile]) -> pa.Table | None:
        """The identities of these files' flows; None when none of them has any (older stores)."""
        paths = [self.ids_path(f) for f in files]
        present = [p for p in paths if self.fs.get_file_info(p).type == pafs.FileType.File]
        return read_ids(self.fs, present) if present else None

    def ids_path(self, stored: StoredFile) -> str:
        """Where the identities of a stored file's flows are (the file may not exist: older stores)."""
        return self.ids_dir + stored.path[len(self.flows_dir):]

    def open_file(self, stored: StoredFile, read_dictionary: Sequence[str] | None = None) -> pq.ParquetFile:
        """Open one stored file after checking that its schema version is ours (`read_dictionary`:
        columns, or nested paths such as `src_labels.key_value.key`, to read dictionary-encoded)."""
        try:
            parquet = pq.ParquetFile(stored.path, filesystem=self.fs)
        except FileNotFoundError as e:
            raise StoreError(f"{stored.path}: removed while this command read the store (by a compaction or "
                             "a prune); run the command again") from e
        except (OSError, pa.ArrowInvalid) as e:
            raise unreadable(stored.path, e) from e
        metadata = parquet.schema_arrow.metadata or {}
        version = metadata.get(VERSION_KEY, b"?").decode()
        if version.isdigit() and int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"{stored.path}: written by a newer synth (store schema version {version}); this one reads versions "
                f"{', '.join(str(v) for v in sorted(READABLE_VERSIONS))}: upgrade synth to read this store"
            )
        if version not in {str(v) for v in READABLE_VERSIONS}:
            raise StoreError(
                f"{stored.path}: written with store schema version {version}, this synth reads versions "
                f"{', '.join(str(v) for v in sorted(READABLE_VERSIONS))}; import the flows again into a new store"
            )
        if read_dictionary:  # opened again with the footer already read
            present = set(parquet.schema_arrow.names)
            wanted = [path for path in read_dictionary if path.split(".", 1)[0] in present]
            parquet = pq.ParquetFile(stored.path, filesystem=self.fs, metadata=parquet.metadata, read_dictionary=wanted)
        return parquet

    def read(
        self,
        columns: Sequence[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        sources: Sequence[str] | None = None,
        on_file: Callable[[int, int, int], None] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream stored flows, file by file, restricted to the window when one is given.

        `on_file(done, total, rows)` is called after each file, for a progress display.
        """
        files = self.files(since_ns, until_ns, sources)
        rows = 0
        for position, stored in enumerate(files, 1):
            for batch in self.read_file(stored, columns, since_ns, until_ns):
                rows += batch.num_rows
                yield batch
            if on_file is not None:
                on_file(position, len(files), rows)

    def read_file(
        self,
        stored: StoredFile,
        columns: Sequence[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream one file's batches, restricted to the window, with `source` restored from the path."""
        parquet = self.open_file(stored)
        names = list(columns) if columns is not None else FLOW_SCHEMA.names
        restore = "source" in names and "source" not in parquet.schema_arrow.names  # version 2 files
        absent = set(absent_columns(parquet, names))
        wanted = [name for name in names if not (restore and name == "source") and name not in absent]
        windowed = since_ns is not None or until_ns is not None
        if windowed and "time" not in wanted:
            wanted.append("time")
        schema = pa.schema([FLOW_SCHEMA.field(name) for name in names])
        for batch in checked_batches(stored.path, parquet.iter_batches(columns=wanted, batch_size=ROW_GROUP_ROWS)):
            if windowed:
                batch = _window(batch, since_ns, until_ns)
            if batch.num_rows:
                arrays = {name: batch.column(name) for name in wanted}
                if restore:
                    arrays["source"] = _constant_source(stored.source, batch.num_rows)
                for name in absent:
                    arrays[name] = pa.nulls(batch.num_rows, FLOW_SCHEMA.field(name).type)
                yield pa.RecordBatch.from_arrays([arrays[name] for name in names], schema=schema)

    def facts(self) -> list[dict[str, object]]:
        """The collection facts of every stored file (source, input, lost events, ...)."""
        result = []
        for stored in self.files():
            metadata = self.open_file(stored).schema_arrow.metadata or {}
            result.append(json.loads(metadata.get(FACTS_KEY, b"{}")))
        return result

    def size(self, stored: StoredFile | str) -> int:
        """Bytes of one stored file."""
        path = stored.path if isinstance(stored, StoredFile) else stored
        return int(self.fs.get_file_info(path).size or 0)

    def replace_files(
        self, old: list[StoredFile], table: pa.Table, facts: dict[str, object], ids: pa.Table | None
    ) -> str:
        """Put one file (and the identities of its flows) in place of several of the same partition.

        Crash-safe: on a local disk through a journal that the next writer finishes; on an object
        store through one commit record that names the new files and the ones they replace.
        """
        directory = old[0].path.rsplit("/", 1)[0]
        name = f"part-{uuid.uuid4().hex[:16]}-c.parquet"
        final = f"{directory}/{name}"
        ids_final = self.ids_dir + final[len(self.flows_dir) :]
        schema = FLOW_SCHEMA.with_metadata(
            {VERSION_KEY: str(SCHEMA_VERSION).encode(), FACTS_KEY: json.dumps(facts, sort_keys=True).encode()}
        )
        old_ids = [self.ids_path(f) for f in old if self.fs.get_file_info(self.ids_path(f)).type == pafs.FileType.File]
        written: list[Writing] = [(ids_final, lambda sink: write_ids(ids, sink))] if ids is not None else []
        written.append((final, lambda sink: pq.write_table(
            file_table(table, schema.metadata), sink, row_group_size=ROW_GROUP_ROWS, compression="zstd")))
        self.replace([*old_ids, *(f.path for f in old)], written)
        return final

    def replace(self, old: Sequence[str], written: Sequence[Writing] = ()) -> None:
        """Write new files and remove old ones as one step readers see whole (or not at all).

        Local disk: the new files are written under dot-names, then a journal names them and the old
        files; the journal is carried out (and is carried out by the next writer after a crash), and
        readers that meet a journal whose new files are in place skip its old files. Object store: one
        commit record names the new files and replaces the old ones. Compaction, prune and quarantine
        use it; the caller holds the writer lock.
        """
        if not self.renames:
            for path, write in written:
                write_file(self.fs, path, write)
            files = tuple(self.relative(path) for path, _ in written)
            write_commit(self.fs, self.root, Commit(uuid.uuid4().hex[:16] + "-r", files,
                                                    tuple(self.relative(p) for p in old)))
            delete_files(self.fs, old)
            return
        moves: list[list[str]] = []
        journal = self._path(".compact-journal.json")
        try:
            for path, write in written:
                temporary = temporary_path(path)
                write_file(self.fs, temporary, write)
                moves.append([temporary, path])
            body = json.dumps({"moves": moves, "old": list(old)})
            write_file(self.fs, journal, lambda out: out.write(body.encode()))
        except BaseException:  # nothing was replaced: leave no temporary behind
            delete_files(self.fs, [temporary for temporary, _ in moves])
            raise
        self._finish_replace(journal)

    def _finish_replace(self, journal: str) -> None:
        with self.fs.open_input_stream(journal) as stream:
            entry = _journal_entry(json.loads(stream.read()))
        for temporary, final in entry.moves:
            if self.fs.get_file_info(temporary).type == pafs.FileType.File:
                self.fs.move(temporary, final)
        if all(self.fs.get_file_info(final).type == pafs.FileType.File for _, final in entry.moves):
            delete_files(self.fs, entry.old)
        self.fs.delete_file(journal)

    # ----- import ledger
    def imports(self) -> list[ImportEntry]:
        """Committed imports, oldest first."""
        if self._ledger is not None:
            return list(self._ledger)
        directory = self._path("imports")
        if self.fs.get_file_info(directory).type != pafs.FileType.Directory:
            return []
        entries = []
        for info in self.fs.get_file_info(pafs.FileSelector(directory)):
            if info.base_name.endswith(".json") and not info.base_name.startswith("."):
                with self.fs.open_input_stream(info.path) as stream:
                    entries.append(ImportEntry(**json.loads(stream.read())))
        return sorted(entries, key=lambda e: (e.imported_at, e.id))

    def find_import(
        self,
        *,
        sha256: str | None = None,
        input_name: str | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> ImportEntry | None:
        """A committed import with these bytes, or with this path, size and mtime."""
        for entry in self.imports():
            if sha256 is not None and entry.sha256 == sha256:
                return entry
            if input_name is not None and (entry.input, entry.size, entry.mtime_ns) == (input_name, size, mtime_ns):
                return entry
        return None

    def staged(self, facts: dict[str, object]) -> StagedWriter:
        """A writer whose files stay invisible until `commit()`."""
        self.recover()
        import_id = uuid.uuid4().hex[:16]
        # Files name their import: the ledger entry `imports/<id>.json` holds what is only known at the
        # end (the input's digest, lost events per node, the window, skips).
        from synth.store.writer import StagedWriter  # noqa: PLC0415 - the writers build on this module

        return StagedWriter(self, import_id, {**facts, "import": import_id})

    def recover(self) -> None:
        """Finish what a killed writer left half-done (the caller holds the writer lock).

        Local disk: finish imports that were committed but not fully moved, drop ones never
        committed, finish a compaction whose journal was written. Object store: delete the files no
        commit record names (a writer killed before its commit) or that a compaction replaced.
        """
        if not self.renames:
            self._delete_uncommitted()
            return
        journal = self._path(".compact-journal.json")
        if self.fs.get_file_info(journal).type == pafs.FileType.File:
            self._finish_replace(journal)
        staging = self._path(".staging")
        if self.fs.get_file_info(staging).type != pafs.FileType.Directory:
            return
        committed = {e.id for e in self.imports()}
        for info in self.fs.get_file_info(pafs.FileSelector(staging)):
            if info.type != pafs.FileType.Directory:
                continue
            if info.base_name in committed:
                publish_tree(self.fs, info.path, self.root)
            self.fs.delete_dir(info.path)

    def uncommitted(self) -> list[str]:
        """On an object store: files under flows/ and ids/ that no commit record makes visible."""
        visible = self.committed()
        found = []
        for directory in (self.flows_dir, self.ids_dir):
            if self.fs.get_file_info(directory).type != pafs.FileType.Directory:
                continue
            for info in self.fs.get_file_info(pafs.FileSelector(directory, recursive=True)):
                if info.type == pafs.FileType.File and self.relative(info.path) not in visible:
                    found.append(info.path)
        return sorted(found)

    def _delete_uncommitted(self) -> None:
        delete_files(self.fs, self.uncommitted())

    def _write_ledger(self, entry: ImportEntry) -> None:
        directory = self._path("imports")
        self.fs.create_dir(directory, recursive=True)
        final = f"{directory}/{entry.id}.json"
        body = json.dumps(_asdict(entry), sort_keys=True).encode()
        if not self.renames:  # one PUT is atomic on an object store
            write_file(self.fs, final, lambda out: out.write(body))
            return
        temporary = f"{directory}/.{entry.id}.json.tmp"
        write_file(self.fs, temporary, lambda out: out.write(body))
        self.fs.move(temporary, final)

    def writer(self, facts: dict[str, object]) -> PartitionWriter:
        """A writer whose files become visible at each flush (for live collection)."""
        from synth.store.writer import PartitionWriter  # noqa: PLC0415 - the writers build on this module

        return PartitionWriter(self, self.root, facts, uuid.uuid4().hex[:16])


def _asdict(entry: ImportEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__slots__}


def _writer_id(path: str) -> str:
    """The import (or collection, or compaction) that wrote a file: `part-<id>-<sequence>.parquet`."""
    return path.rsplit("/", 1)[-1].split("-")[1] if path.rsplit("/", 1)[-1].count("-") >= 2 else ""


def _constant_source(source: str, rows: int) -> pa.Array:
    """The `source` column of a file, from its partition (the same dictionary the sources build)."""
    values = pa.array(SOURCES if source in SOURCES else (source,), pa.string())
    index = SOURCES.index(source) if source in SOURCES else 0
    return pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(index, pa.int32()), rows), values)


def absent_columns(parquet: pq.ParquetFile, names: Sequence[str]) -> list[str]:
    """The columns of `names` that a file written before they were added lacks (read as nulls)."""
    added = {name for columns in ADDED_COLUMNS.values() for name in columns}
    present = set(parquet.schema_arrow.names)
    return [name for name in names if name in added and name not in present]


def _window(batch: pa.RecordBatch, since_ns: int | None, until_ns: int | None) -> pa.RecordBatch:
    times = batch.column("time").cast(pa.int64())
    mask = None
    if since_ns is not None:
        mask = pc.greater_equal(times, since_ns)
    if until_ns is not None:
        upper = pc.less(times, until_ns)
        mask = upper if mask is None else pc.and_(mask, upper)
    return batch.filter(mask) if mask is not None else batch


def _parse_partition(path: str) -> StoredFile | None:
    parts = dict(p.split("=", 1) for p in path.split("/") if "=" in p)
    try:
        hour_start = datetime.strptime(f"{parts['date']} {parts['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        return None
    return StoredFile(path, parts.get("source", ""), int(hour_start.timestamp()) * 1_000_000_000)


@dataclass(frozen=True, slots=True)
class _Journal:
    """A compaction in progress: temporary files to move into place, then the files they replace."""

    moves: tuple[tuple[str, str], ...]
    old: tuple[str, ...]


def _journal_entry(entry: dict[str, Any]) -> _Journal:
    """The journal as written (`moves`, `old`); older ones named one `temporary` and its `new` place."""
    moves = entry["moves"] if "moves" in entry else [[entry["temporary"], entry["new"]]]
    return _Journal(tuple((str(a), str(b)) for a, b in moves), tuple(str(p) for p in entry["old"]))
