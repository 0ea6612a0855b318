"""A store that cannot be written (a full disk, a read-only mount, a refused bucket), said in one line.

Writers turn the operating system's (or pyarrow's) OSError into a StoreError that names the store,
the reason, and what is left in it, so a full disk is a plain message and exit 3, not a traceback.
"""

from __future__ import annotations

import os

from synth.base.errors import StoreError


def write_failure(store_text: str, error: OSError, outcome: str) -> StoreError:
    """`STORE: cannot write the store: No space left on device; OUTCOME`."""
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    reason = os.strerror(error.errno) if error.errno else first_line
    return StoreError(f"{store_text}: cannot write the store: {reason}; {outcome}")
