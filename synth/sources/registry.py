"""The file sources by name: adding a source is one module and one line here."""

from __future__ import annotations

from typing import Any, Protocol

from synth.base.errors import UsageError
from synth.sources.interface import FlowSource
from synth.sources.reader import InputFile


class FileSourceClass(Protocol):
    """A FlowSource class that reads one opened input file."""

    def __call__(self, input_file: InputFile, *, strict: bool = ..., **options: Any) -> FlowSource: ...


def _hubble() -> FileSourceClass:
    from synth.sources.hubble.files import HubbleFileSource

    return HubbleFileSource  # type: ignore[return-value]


def _calico() -> FileSourceClass:
    from synth.sources.calico.files import CalicoFileSource

    return CalicoFileSource  # type: ignore[return-value]


_FILE_SOURCES = {"hubble": _hubble, "calico": _calico}


def file_source(name: str) -> FileSourceClass:
    """The class that imports files of the named source."""
    try:
        return _FILE_SOURCES[name]()
    except KeyError:
        raise UsageError(f"unknown source {name!r}; known: {', '.join(sorted(_FILE_SOURCES))}") from None
