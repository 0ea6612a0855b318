"""Files of the store, one at a time: write whole or not at all, delete, move, and the identity files.

The store (`synth.store.dataset`) and its writers (`synth.store.writer`) share these, so a failed
write (a full disk) is cleaned up in one place and a damaged file is reported in one sentence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from synth.base.errors import StoreError
from synth.store.identity import ID_KEYS, ID_SCHEMA
from synth.store.schema import PARTITION_COLUMNS

VERSION_KEY = b"synth.schema_version"
FACTS_KEY = b"synth.facts"
ROW_GROUP_ROWS = 131_072

Writing = tuple[str, Callable[[pa.NativeFile], object]]
"""A file to write: its path, and what writes its bytes into an open stream."""


def temporary_path(path: str) -> str:
    directory, name = path.rsplit("/", 1)
    return f"{directory}/.{name}.tmp"


def write_file(fs: pafs.FileSystem, path: str, write: Callable[[pa.NativeFile], object]) -> None:
    """Write one file; a failed write (a full disk) leaves nothing of it behind."""
    try:
        with fs.open_output_stream(path) as sink:
            write(sink)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(path)
        raise


def delete_files(fs: pafs.FileSystem, paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(path)


def write_ids(ids: pa.Table, sink: pa.NativeFile) -> None:
    """The identities of one file's flows, sorted by time (which Parquet then stores in few bytes)."""
    ordered = ids.take(pc.sort_indices(ids, [(name, "ascending") for name in ID_KEYS]))
    pq.write_table(ordered.cast(ID_SCHEMA), sink, compression="zstd")


def read_ids(fs: pafs.FileSystem, paths: Sequence[str]) -> pa.Table:
    """The identities in these `ids/` files, as one table."""
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path, filesystem=fs, columns=list(ID_KEYS)))
        except (OSError, pa.ArrowInvalid) as e:
            raise unreadable(path, e) from e
    return pa.concat_tables(tables).cast(ID_SCHEMA) if tables else ID_SCHEMA.empty_table()


def file_table(table: pa.Table, metadata: dict[bytes, bytes] | None) -> pa.Table:
    """What goes into a file: the flows without their partition columns (those live in the path)."""
    present = [name for name in PARTITION_COLUMNS if name in table.column_names]
    return table.drop_columns(present).replace_schema_metadata(metadata)


def move_tree(fs: pafs.FileSystem, source_dir: str, target_dir: str) -> None:
    """Move every file under `source_dir` to the same place under `target_dir`."""
    if fs.get_file_info(source_dir).type != pafs.FileType.Directory:
        return
    for info in fs.get_file_info(pafs.FileSelector(source_dir, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(source_dir) :].lstrip("/")
        target = f"{target_dir}/{relative}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        fs.move(info.path, target)


def publish_tree(fs: pafs.FileSystem, staged_dir: str, root: str) -> None:
    """Move a committed import's staged files into place under `root`: identities first, then the flows."""
    move_tree(fs, f"{staged_dir}/ids", f"{root}/ids")
    move_tree(fs, f"{staged_dir}/flows", f"{root}/flows")


def unreadable(path: str, error: BaseException) -> StoreError:
    """The one message for a damaged file of the store (a partial copy, bit rot)."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return StoreError(f"{path}: not a readable Parquet file ({reason}); `synth store check` lists the damaged "
                      "files and sets them aside")


def checked_batches(path: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A file's batches; damage found while decoding them is reported as the file's."""
    try:
        yield from batches
    except (OSError, pa.ArrowInvalid) as e:
        raise unreadable(path, e) from e


@contextlib.contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow allocates through the C library's malloc meanwhile, where pyarrow lets Python choose (the
    command sets the process's pool for all of Arrow: `synth.cli`): mimalloc, pyarrow's default, keeps
    each thread's freed pages, which measured 70 MB more peak RSS on a 10M-flow store in the engine and
    150 MB more in compaction, for no gain in time."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
