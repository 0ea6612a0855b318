"""The flow store: a hive-partitioned Parquet dataset (`flows/source=S/date=D/hour=H/part-*.parquet`).

Files become visible atomically: each is written under a dot-name and renamed into place, so a
reader never sees half a file and a crash loses at most what was in flight. Imports are staged
and committed as a whole through a ledger entry (`imports/<id>.json`), which is also how the
same input is recognised when it comes again. Every file carries the schema version and the
collection facts in its metadata; a file of another schema version is refused, not misread.
Any pyarrow filesystem works (`s3://bucket/prefix`); a plain path is the local disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from synth.base.errors import StoreError
from synth.base.signals import interrupts_deferred
from synth.store.compact import compact_table
from synth.store.lock import writer_lock
from synth.store.schema import FLOW_SCHEMA, PARTITION_COLUMNS, READABLE_VERSIONS, SCHEMA_VERSION, SOURCES

_NS_PER_HOUR = 3_600_000_000_000
VERSION_KEY = b"synth.schema_version"
FACTS_KEY = b"synth.facts"
# Rows kept in memory across all open partitions before the largest is written out.
_BUFFER_ROWS = 65_536
_ROW_GROUP_ROWS = 131_072


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

    # ----- layout
    def _path(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"), *parts))

    @property
    def flows_dir(self) -> str:
        """Where the committed Parquet files live."""
        return self._path("flows")

    def writing(self, command: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the store's writer lock (`synth.store.lock`): imports, compaction and collection take it."""
        return writer_lock(self.root_text, self.root, command)

    def exists(self) -> bool:
        """Whether anything was ever stored here."""
        return bool(self.fs.get_file_info(self.flows_dir).type == pafs.FileType.Directory)

    # ----- reading
    def files(
        self, since_ns: int | None = None, until_ns: int | None = None, sources: Sequence[str] | None = None
    ) -> list[StoredFile]:
        """Committed files whose hour overlaps [since, until), sorted by hour then path."""
        if not self.exists():
            return []
        selector = pafs.FileSelector(self.flows_dir, recursive=True)
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
                continue
            if info.base_name.startswith("."):
                continue
            stored = _parse_partition(info.path)
            if stored is None:
                continue
            if sources and stored.source not in sources:
                continue
            if since_ns is not None and stored.hour_start_ns + _NS_PER_HOUR <= since_ns:
                continue
            if until_ns is not None and stored.hour_start_ns >= until_ns:
                continue
            found.append(stored)
        found.sort(key=lambda f: (f.hour_start_ns, f.path))
        return found

    def open_file(self, stored: StoredFile, read_dictionary: Sequence[str] | None = None) -> pq.ParquetFile:
        """Open one stored file after checking that its schema version is ours (`read_dictionary`:
        columns, or nested paths such as `src_labels.key_value.key`, to read dictionary-encoded)."""
        try:
            parquet = pq.ParquetFile(stored.path, filesystem=self.fs)
        except (OSError, pa.ArrowInvalid) as e:
            raise StoreError(f"{stored.path}: not a readable Parquet file ({e})") from e
        metadata = parquet.schema_arrow.metadata or {}
        version = metadata.get(VERSION_KEY, b"?").decode()
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
        wanted = [name for name in names if not (restore and name == "source")]
        windowed = since_ns is not None or until_ns is not None
        if windowed and "time" not in wanted:
            wanted.append("time")
        schema = pa.schema([FLOW_SCHEMA.field(name) for name in names])
        for batch in parquet.iter_batches(columns=wanted, batch_size=_ROW_GROUP_ROWS):
            if windowed:
                batch = _window(batch, since_ns, until_ns)
            if batch.num_rows:
                arrays = {name: batch.column(name) for name in wanted}
                if restore:
                    arrays["source"] = _constant_source(stored.source, batch.num_rows)
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

    def replace_files(self, old: list[StoredFile], table: pa.Table, facts: dict[str, object]) -> str:
        """Put one file in place of several of the same partition, crash-safe through a journal."""
        directory = old[0].path.rsplit("/", 1)[0]
        name = f"part-{uuid.uuid4().hex[:16]}-c.parquet"
        temporary, final = f"{directory}/.{name}.tmp", f"{directory}/{name}"
        schema = FLOW_SCHEMA.with_metadata(
            {VERSION_KEY: str(SCHEMA_VERSION).encode(), FACTS_KEY: json.dumps(facts, sort_keys=True).encode()}
        )
        with self.fs.open_output_stream(temporary) as sink:
            pq.write_table(_file_table(table, schema.metadata), sink, row_group_size=_ROW_GROUP_ROWS,
                           compression="zstd")
        journal = self._path(".compact-journal.json")
        with self.fs.open_output_stream(journal) as out:
            out.write(json.dumps({"new": final, "temporary": temporary, "old": [f.path for f in old]}).encode())
        self._finish_replace(journal)
        return final

    def _finish_replace(self, journal: str) -> None:
        with self.fs.open_input_stream(journal) as stream:
            entry = json.loads(stream.read())
        if self.fs.get_file_info(entry["temporary"]).type == pafs.FileType.File:
            self.fs.move(entry["temporary"], entry["new"])
        if self.fs.get_file_info(entry["new"]).type == pafs.FileType.File:
            for path in entry["old"]:
                if self.fs.get_file_info(path).type == pafs.FileType.File:
                    self.fs.delete_file(path)
        self.fs.delete_file(journal)

    # ----- import ledger
    def imports(self) -> list[ImportEntry]:
        """Committed imports, oldest first."""
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
        return StagedWriter(self, import_id, {**facts, "import": import_id})

    def recover(self) -> None:
        """Finish imports that were committed but not fully moved; drop ones never committed.

        Also finishes a compaction interrupted after its journal was written.
        """
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
                _move_tree(self.fs, info.path, self.flows_dir)
            self.fs.delete_dir(info.path)

    def _write_ledger(self, entry: ImportEntry) -> None:
        directory = self._path("imports")
        self.fs.create_dir(directory, recursive=True)
        final = f"{directory}/{entry.id}.json"
        temporary = f"{directory}/.{entry.id}.json.tmp"
        with self.fs.open_output_stream(temporary) as out:
            out.write(json.dumps(_asdict(entry), sort_keys=True).encode())
        self.fs.move(temporary, final)

    def writer(self, facts: dict[str, object]) -> PartitionWriter:
        """A writer that renames each finished file straight into the store (for live collection)."""
        return PartitionWriter(self.fs, self.flows_dir, facts, uuid.uuid4().hex[:16])


def _asdict(entry: ImportEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__slots__}


def _constant_source(source: str, rows: int) -> pa.Array:
    """The `source` column of a file, from its partition (the same dictionary the sources build)."""
    values = pa.array(SOURCES if source in SOURCES else (source,), pa.string())
    index = SOURCES.index(source) if source in SOURCES else 0
    return pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(index, pa.int32()), rows), values)


def _file_table(table: pa.Table, metadata: dict[bytes, bytes] | None) -> pa.Table:
    """What goes into a file: the flows without their partition columns (those live in the path)."""
    present = [name for name in PARTITION_COLUMNS if name in table.column_names]
    return table.drop_columns(present).replace_schema_metadata(metadata)


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


def _move_tree(fs: pafs.FileSystem, source_dir: str, target_dir: str) -> None:
    for info in fs.get_file_info(pafs.FileSelector(source_dir, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(source_dir) :].lstrip("/")
        target = f"{target_dir}/{relative}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        fs.move(info.path, target)


def partition_of(hour_index: int, source: str) -> str:
    """`source=S/date=D/hour=H` for an hour counted from the epoch."""
    moment = datetime.fromtimestamp(hour_index * 3600, tz=UTC)
    return f"source={source}/date={moment:%Y-%m-%d}/hour={moment:%H}"


class PartitionWriter:
    """Splits batches by source and hour, buffers them, compacts and writes Parquet files atomically.

    Files are written under a dot-name and renamed when closed, so `close()` (or `flush()`)
    is the moment they become visible. Memory is bounded by `_BUFFER_ROWS` across partitions.
    """

    #: identical flows within this interval are stored as one row with a count (0: store every flow)
    COMPACT_INTERVAL_NS = 60_000_000_000

    def __init__(self, fs: pafs.FileSystem, target_dir: str, facts: dict[str, object], file_id: str) -> None:
        self.fs = fs
        self.target_dir = target_dir
        self.file_id = file_id
        self.schema = FLOW_SCHEMA.with_metadata(
            {VERSION_KEY: str(SCHEMA_VERSION).encode(), FACTS_KEY: json.dumps(facts, sort_keys=True).encode()}
        )
        self._buffers: dict[str, list[pa.RecordBatch]] = {}
        self._buffered_rows = 0
        self._sequence = 0
        self.rows_written = 0
        self.flows_written = 0
        self.files_written: list[str] = []
        self.compact_interval_ns = self.COMPACT_INTERVAL_NS

    def set_facts(self, facts: dict[str, object]) -> None:
        """Replace the facts written into files from now on (e.g. lost-event totals)."""
        metadata = dict(self.schema.metadata or {})
        metadata[FACTS_KEY] = json.dumps(facts, sort_keys=True).encode()
        self.schema = self.schema.with_metadata(metadata)

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue a FLOW_SCHEMA batch; partitions are written when the buffer is full."""
        if batch.num_rows == 0:
            return
        for partition, part in _split_by_partition(batch):
            self._buffers.setdefault(partition, []).append(part)
            self._buffered_rows += part.num_rows
        while self._buffered_rows > _BUFFER_ROWS:
            largest = max(self._buffers, key=lambda p: sum(b.num_rows for b in self._buffers[p]))
            self._write_partition(largest)

    def flush(self) -> None:
        """Write every buffered row; afterwards all of them are visible in the store."""
        for partition in sorted(self._buffers):
            self._write_partition(partition)

    close = flush

    def _write_partition(self, partition: str) -> None:
        batches = self._buffers.pop(partition, [])
        rows = sum(b.num_rows for b in batches)
        if not rows:
            return
        self._buffered_rows -= rows
        directory = f"{self.target_dir}/{partition}"
        self.fs.create_dir(directory, recursive=True)
        self._sequence += 1
        name = f"part-{self.file_id}-{self._sequence:05d}.parquet"
        temporary, final = f"{directory}/.{name}.tmp", f"{directory}/{name}"
        table = pa.Table.from_batches(batches, schema=FLOW_SCHEMA)
        if self.compact_interval_ns:
            table = compact_table(table, self.compact_interval_ns)
        table = _file_table(table, self.schema.metadata)
        written_rows = table.num_rows
        with self.fs.open_output_stream(temporary) as sink:
            pq.write_table(table, sink, row_group_size=_ROW_GROUP_ROWS, compression="zstd")
        self.fs.move(temporary, final)
        del table, batches
        release_memory()
        self.rows_written += written_rows
        self.flows_written += rows
        self.files_written.append(final)


def _trim() -> Callable[[int], object] | None:
    try:
        trim: Callable[[int], object] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _trim()


def release_memory() -> None:
    """Hand freed memory back to the OS after each written file, so a long import's RSS stays flat.

    Arrow's pool keeps freed blocks, and glibc keeps the heap that multi-megabyte input blocks and
    IPC buffers fragmented; both are returned here (cheaper than forcing every large buffer into mmap).
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _split_by_partition(batch: pa.RecordBatch) -> Iterable[tuple[str, pa.RecordBatch]]:
    hours = pc.divide(batch.column("time").cast(pa.int64()), _NS_PER_HOUR)
    sources = batch.column("source")
    source_values = pc.unique(sources.dictionary_decode() if pa.types.is_dictionary(sources.type) else sources)
    hour_values = pc.unique(hours).to_pylist()
    if len(hour_values) == 1 and len(source_values) == 1:
        yield partition_of(hour_values[0], source_values[0].as_py()), batch
        return
    decoded = sources.dictionary_decode() if pa.types.is_dictionary(sources.type) else sources
    for source in source_values.to_pylist():
        for hour in sorted(hour_values):
            mask = pc.and_(pc.equal(hours, hour), pc.equal(decoded, source))
            part = batch.filter(mask)
            if part.num_rows:
                yield partition_of(hour, source), part


class StagedWriter(PartitionWriter):
    """A partition writer into `.staging/<id>/`, made visible as a whole by `commit()`."""

    def __init__(self, store: Store, import_id: str, facts: dict[str, object]) -> None:
        super().__init__(store.fs, store._path(".staging", import_id), facts, import_id)
        self.store = store
        self.import_id = import_id

    def commit(
        self, *, input_name: str, sha256: str, size: int, mtime_ns: int, facts: dict[str, object]
    ) -> ImportEntry:
        """Record the import in the ledger, then move its files into place.

        Ctrl-C during these steps takes effect after them: the import is then committed as a whole.
        """
        self.flush()
        entry = ImportEntry(
            id=self.import_id,
            input=input_name,
            sha256=sha256,
            size=size,
            mtime_ns=mtime_ns,
            flows=self.flows_written,
            imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            facts=facts,
        )
        with interrupts_deferred():
            self.store._write_ledger(entry)
            if self.files_written:
                _move_tree(self.fs, self.target_dir, self.store.flows_dir)
            self.discard()
        return entry

    def discard(self) -> None:
        """Forget everything written so far (nothing of it was ever visible)."""
        self._buffers.clear()
        self._buffered_rows = 0
        if self.fs.get_file_info(self.target_dir).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.target_dir)
