"""Shared fixtures: the bundled sample store, the real captures in ../shared, the CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FLOWS = sorted((ROOT / "sample_flows").glob("hubble-*.json.gz"))
SHARED_CAPTURES = ROOT.parent / "shared" / "data" / "hubble-captures"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files from the current output.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@dataclass(frozen=True)
class Run:
    """The outcome of one `synth` invocation."""

    code: int
    out: str
    err: str


@pytest.fixture
def synth(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run `synth ARGS...` in-process through main() and capture its output."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def assert_format_usage_error(synth: Callable[..., Run], store: Path, options: tuple[str, ...], message: str) -> None:
    """Each command that takes `--format` and its options (generate, report, diff) refuses `options` with
    `message`, exit 2, nothing on stdout."""
    for command in ("generate", "report", "diff"):
        deployed = ("--deployed", store) if command == "diff" else ()
        run = synth(command, "-n", "shop", *options, *deployed, "--store", store)
        assert (run.code, run.out, run.err) == (2, "", f"synth: error: {message}\n"), command


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the bundled sample flows (imported once per session)."""
    from synth.app.ingest import import_files
    from synth.store.dataset import Store

    path = tmp_path_factory.mktemp("sample-store")
    import_files(Store(str(path)), "hubble", [str(p) for p in SAMPLE_FLOWS])
    return path


@pytest.fixture(scope="session")
def apps_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated apps whose workloads share labels (`scripts/gen_flows.py apps`), made once per session."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("apps")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_flows.py"), "apps", "--out", str(out)], check=True,
                   capture_output=True)
    return out


def shared_captures() -> list[Path]:
    """The real captures beside the checkout, or a skip when they are not there."""
    files = sorted(SHARED_CAPTURES.glob("*.json"))
    if not files:
        pytest.skip("../shared/data/hubble-captures is not present")
    return files
