"""`python -m synth` runs the command-line interface."""

from synth.cli import main

raise SystemExit(main())
