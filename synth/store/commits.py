"""Commit records: how files become visible in a store on an object store, where rename is not atomic.

On S3 a rename is a copy and a delete, visible half-way, and a staged import moved file by file
would show its first files before its last. So there, writers put each file straight under its
final name, where readers ignore it, and then write one small object, `commits/<id>.json`, that
lists the files it makes visible and the ones it replaces (a compaction). One PUT is atomic:
before it nothing of the write is visible, after it all of it is. Readers take the store's
contents from the commit records alone, read once when they start (one consistent snapshot); a
writer killed half-way leaves files no record names, which the next writer deletes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow.fs as pafs

COMMITS = "commits"


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit record: files (relative to the store root) made visible, and files it replaces."""

    id: str
    files: tuple[str, ...]
    replaces: tuple[str, ...] = ()


def write_commit(fs: pafs.FileSystem, root: str, commit: Commit) -> None:
    """Publish a commit (a single PUT: all of its files become visible at once)."""
    body = {"id": commit.id, "files": list(commit.files), "replaces": list(commit.replaces)}
    with fs.open_output_stream(f"{root}/{COMMITS}/{commit.id}.json") as out:
        out.write(json.dumps(body, sort_keys=True).encode())


def read_commits(fs: pafs.FileSystem, root: str) -> list[Commit]:
    """Every commit record of the store, in id order."""
    directory = f"{root}/{COMMITS}"
    if fs.get_file_info(directory).type != pafs.FileType.Directory:
        return []
    commits = []
    for info in fs.get_file_info(pafs.FileSelector(directory)):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            with fs.open_input_stream(info.path) as stream:
                body = json.loads(stream.read())
            commits.append(Commit(body["id"], tuple(body["files"]), tuple(body.get("replaces", ()))))
    return sorted(commits, key=lambda c: c.id)


def visible_files(commits: list[Commit]) -> set[str]:
    """The files the commits make visible and no later commit replaced (paths relative to the root)."""
    files = {path for commit in commits for path in commit.files}
    return files - {path for commit in commits for path in commit.replaces}
