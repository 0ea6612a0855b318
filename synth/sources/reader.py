"""Open input files and stream JSON records out of them, whatever their framing.

Handles plain and gzip files (by content, not by name), `-` for stdin, and three framings:
one JSON value per line (the common case, parsed with orjson), a JSON array, and a stream of
pretty-printed objects (`jq .` output). Sources that ask for it (`records(sse=True)`) also get a
fourth: server-sent events (`data: {...}` lines, as a watch of whisker-backend sends them).
Every record comes with its line number so skips can say `file:line`. A SHA-256 of the raw bytes
is computed on the way, for duplicate detection.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from synth.base.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
_READ_SIZE = 1 << 20
# A pretty-printed record larger than this is not a flow record: stop instead of eating memory.
_MAX_RECORD_BYTES = 64 << 20


class _HashingReader(io.RawIOBase):
    """A raw stream that feeds every byte it reads into a SHA-256 and counts them."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no copy on the way
            n = readinto(buffer) or 0
            view = memoryview(buffer)[:n]
        else:
            view = memoryview(self._raw.read(len(buffer)))
            n = len(view)
            buffer[:n] = view
        self.digest.update(view)
        self.bytes_read += n
        return n


@dataclass(slots=True)
class Record:
    """One parsed JSON value and the line it starts on; `error` is set instead when it is not JSON."""

    line: int
    value: Any = None
    error: str = ""
    raw: bytes = b""


class InputFile:
    """A file (or stdin) opened for streaming records; use as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.display = "<stdin>" if path == "-" else path
        self._raw: IO[bytes] | None = None
        self._hashing: _HashingReader | None = None
        self._text: io.BufferedIOBase | None = None

    def __enter__(self) -> InputFile:
        try:
            raw: IO[bytes] = sys.stdin.buffer if self.path == "-" else Path(self.path).open("rb")
        except FileNotFoundError as e:
            raise InputError(f"{self.display}: no such file") from e
        except IsADirectoryError as e:
            raise InputError(f"{self.display}: is a directory, not a flow file") from e
        except OSError as e:
            raise InputError(f"{self.display}: cannot read: {e.strerror}") from e
        self._raw = raw
        self._hashing = _HashingReader(raw)
        buffered = io.BufferedReader(self._hashing, _READ_SIZE)
        try:
            magic = buffered.peek(2)[:2]
        except OSError as e:
            raise InputError(f"{self.display}: cannot read: {e}") from e
        self._text = gzip.GzipFile(fileobj=buffered, mode="rb") if magic == _GZIP_MAGIC else buffered
        return self

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None and self.path != "-":
            self._raw.close()

    @property
    def sha256(self) -> str:
        """Hex digest of the raw bytes read so far (all of them once records are exhausted)."""
        assert self._hashing is not None
        return self._hashing.digest.hexdigest()

    @property
    def bytes_read(self) -> int:
        """Raw (compressed) bytes read so far."""
        return self._hashing.bytes_read if self._hashing is not None else 0

    def lines(self) -> Iterator[bytes]:
        """Raw lines, with read errors (truncated gzip, I/O) turned into one clear InputError."""
        assert self._text is not None
        stream = self._text
        try:
            yield from stream
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise InputError(f"{self.display}: truncated or corrupt gzip data ({e})") from e
        except OSError as e:
            raise InputError(f"{self.display}: read failed: {e}") from e

    def read(self, size: int) -> bytes:
        """Up to `size` bytes, with read errors turned into one clear InputError."""
        assert self._text is not None
        try:
            return self._text.read(size)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise InputError(f"{self.display}: truncated or corrupt gzip data ({e})") from e
        except OSError as e:
            raise InputError(f"{self.display}: read failed: {e}") from e

    def ndjson_blocks(self, size: int = 4 << 20) -> Iterator[tuple[int, bytes]] | None:
        """Whole-line blocks `(first line number, bytes)` when the input is one JSON value per line.

        Returns None, having consumed nothing, for any other framing (`records()` reads those);
        a caller can hand the blocks to other processes, which is how imports use both cores.
        """
        assert self._text is not None
        try:
            head = self._text.peek(1 << 16)  # type: ignore[attr-defined]
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            return None
        lines = head.splitlines()
        first = next((line for line in lines if line.strip()), None)
        if first is None or not first.lstrip().startswith(b"{") or len(lines) < 2:
            return None
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return None
        return self._blocks(size)

    def _blocks(self, size: int) -> Iterator[tuple[int, bytes]]:
        line = 1
        carry = b""
        while True:
            chunk = self.read(size)
            if not chunk:
                if carry.strip():
                    yield line, carry
                return
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
            yield line, block
            line += block.count(b"\n")

    def first_value(self) -> Any:
        """The JSON value of the first non-blank line, read ahead without consuming it (None: not JSON)."""
        assert self._text is not None
        try:
            head = self._text.peek(1 << 16)  # type: ignore[attr-defined]
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            return None
        first = next((line for line in head.splitlines() if line.strip()), b"")
        try:
            return orjson.loads(first)
        except orjson.JSONDecodeError:
            return None

    def records(self, *, sse: bool = False, raw: bool = False) -> Iterator[Record]:
        """Every JSON value of the file with its line number; bad lines come back with `error` set.

        With `raw`, lines of a one-value-per-line file come back unparsed in `raw` (the caller has a
        faster typed decoder); other framings still come back parsed.

        With `sse`, a file whose first line is a server-sent-event field (`data:`, `event:`, `id:`,
        `retry:`, `error:` or a `:` comment) is read as an event stream: one record per event.
        """
        lines = self.lines()
        first_line = 0
        first: bytes | None = None
        for number, line in enumerate(lines, 1):
            if line.strip():
                first_line, first = number, line
                break
        if first is None:
            raise InputError(f"{self.display}: empty input, no records")
        if sse and _is_sse_line(first):
            yield from _sse(first_line, first, lines)
            return
        head = first.lstrip()[:1]
        if head not in (b"{", b"["):
            preview = first.strip()[:40].decode("utf-8", "replace")
            raise InputError(f"{self.display}:{first_line}: not JSON (starts with {preview!r})")
        if head == b"{":
            try:
                value = orjson.loads(first)
            except orjson.JSONDecodeError:
                value = None
            if value is not None or first.strip() != b"{":
                yield from _raw_lines(first_line, first, lines) if raw else _ndjson(first_line, first, lines)
                return
        yield from _stream(self.display, first_line, first, lines)


def _ndjson(first_line: int, first: bytes, lines: Iterator[bytes]) -> Iterator[Record]:
    loads, error = orjson.loads, orjson.JSONDecodeError
    number = first_line
    for line in _chain(first, lines):
        try:
            yield Record(number, loads(line))
        except error as e:
            if line.strip():
                yield Record(number, error=f"not valid JSON ({short_error(e)})")
        number += 1


def parsed_lines(start: int, block: bytes) -> Iterator[Record]:
    """The records of a block of whole lines whose first is line `start` (blank lines counted, not returned).

    Lines keep their newline, as when a file is read line by line, so errors read the same.
    """
    lines = iter(io.BytesIO(block))
    return _ndjson(start, next(lines, b""), lines)


def _raw_lines(first_line: int, first: bytes, lines: Iterator[bytes]) -> Iterator[Record]:
    number = first_line
    for line in _chain(first, lines):
        if line.strip():
            yield Record(number, raw=line)
        number += 1


_SSE_FIELDS = (b"data", b"event", b"id", b"retry", b"error")


def _is_sse_line(line: bytes) -> bool:
    text = line.lstrip()
    return text.startswith(b":") or (b":" in text and text.split(b":", 1)[0] in _SSE_FIELDS)


def _sse(first_line: int, first: bytes, lines: Iterator[bytes]) -> Iterator[Record]:
    """Server-sent events: `data:` lines up to a blank line make one JSON record; `error:` is a bad record."""
    data: list[bytes] = []
    start = first_line
    for number, line in enumerate(_chain(first, lines), first_line):
        text = line.rstrip(b"\r\n")
        if not text.strip():
            if data:
                yield _sse_event(start, data)
                data = []
            continue
        field, _, value = text.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"data":
            if not data:
                start = number
            data.append(value)
        elif field == b"error":
            yield Record(number, error=f"the server sent an error: {value.decode('utf-8', 'replace').strip()}")
        elif field not in _SSE_FIELDS and field:
            preview = text.strip()[:40].decode("utf-8", "replace")
            yield Record(number, error=f"not a server-sent event line (starts with {preview!r})")
    if data:
        yield _sse_event(start, data)


def _sse_event(line: int, data: list[bytes]) -> Record:
    try:
        return Record(line, orjson.loads(b"\n".join(data)))
    except orjson.JSONDecodeError as e:
        return Record(line, error=f"event data is not valid JSON ({short_error(e)})")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _stream(display: str, first_line: int, first: bytes, lines: Iterator[bytes]) -> Iterator[Record]:
    """Concatenated or array-wrapped JSON values, possibly spanning lines."""
    decoder = json.JSONDecoder()
    buffer = ""
    line_at_buffer_start = first_line
    in_array = first.lstrip().startswith(b"[")
    pending = _chain(first.lstrip()[1:] if in_array else first, lines)
    exhausted = False
    while True:
        pos = _skip_separators(buffer, 0)
        line_at_buffer_start += buffer.count("\n", 0, pos)
        buffer = buffer[pos:]
        if buffer.startswith("]") and in_array:
            buffer = buffer[1:]
            in_array = False
            continue
        if buffer:
            try:
                value, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError as e:
                if exhausted or len(buffer) > _MAX_RECORD_BYTES:
                    raise InputError(
                        f"{display}:{line_at_buffer_start + e.lineno - 1}: not valid JSON ({e.msg})"
                    ) from e
            else:
                if end < len(buffer) or exhausted:
                    yield Record(line_at_buffer_start, value)
                    line_at_buffer_start += buffer.count("\n", 0, end)
                    buffer = buffer[end:]
                    continue
        if exhausted:
            return
        chunk = next(pending, None)
        if chunk is None:
            exhausted = True
        else:
            buffer += chunk.decode("utf-8", "replace")


def _skip_separators(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n,":
        pos += 1
    return pos


def short_error(error: Exception) -> str:
    """An orjson error message without its position noise when it is long."""
    text = str(error)
    return text.split(":", 1)[0] if len(text) > 80 else text
