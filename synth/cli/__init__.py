"""The `synth` command: a shell over the library. The only package that imports click.

Each command parses its options, calls one library function, formats the result and picks the
exit code; `main` maps errors to exit codes in one place (see `synth.cli.common`).
"""

from synth.cli import checks, collect, flows, generate, store  # noqa: F401 - importing a module registers its commands
from synth.cli.common import cli, main

__all__ = ["cli", "main"]
