"""The `synth` command: a shell over the library. The only package that imports click.

Each command parses its options, calls one library function, formats the result and picks the
exit code; `main` maps errors to exit codes in one place (see `synth.cli.common`).

Arrow allocates through the C library's malloc in the command's processes unless the user chose
otherwise (`ARROW_DEFAULT_MEMORY_POOL`, read when pyarrow loads, which every command does lazily):
mimalloc, pyarrow's default, keeps the pages each thread freed, and measured 60-100 MB more peak
RSS on 1M- and 10M-flow stores (import, edges, generate), without being faster.
"""

import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from synth.cli import checks, collect, flows, generate, store  # noqa: F401 - importing a module registers its commands
from synth.cli.common import cli, main

__all__ = ["cli", "main"]
