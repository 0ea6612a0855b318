"""The error tree. The CLI maps each class to one exit code in one place (`synth.cli.common`).

Messages lead with their subject (`flows.json:42: ...`) and say what to do where it helps.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DIFFERENCES = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_CRASH = 4


class SynthError(Exception):
    """Base of every error synth reports to the user; never shown with a traceback."""

    exit_code = EXIT_ERROR


class UsageError(SynthError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class InputError(SynthError):
    """A file or stream the user gave cannot be read as what it should be."""


class BadRecord(InputError):
    """One record of an input is malformed; carries where it was found."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[type[BadRecord], tuple[str, str]]:
        return (BadRecord, (self.where, self.reason))


class StoreError(SynthError):
    """The flow store is missing, locked, or written by an incompatible version."""


class PolicyError(InputError):
    """A NetworkPolicy document is invalid; the message names file, document and field."""


class CollectError(SynthError):
    """A live source (a gRPC server) cannot be reached or refuses the request."""


class GenerationError(SynthError):
    """synth's own output failed its self-check (for example verify denied observed flows)."""


class UnsafePoliciesError(SynthError):
    """Generated policies would deny observed traffic (or, when asked to be strict, allow more than
    was observed); they are not written unless the user accepts it."""

    exit_code = EXIT_DIFFERENCES
