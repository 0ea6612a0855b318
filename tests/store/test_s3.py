"""A store on S3, against a real S3 API server on localhost (moto's server mode, started here).

The endpoint and credentials come from the standard AWS environment variables, as a user sets them.
There is no atomic rename on S3: readers see what commit records name, so a writer killed before its
commit leaves nothing visible, and the next writer deletes what it left.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from conftest import ROOT, Run

from synth.base.errors import StoreError
from synth.collect.hubble import CollectOptions, collect_hubble
from synth.store.dataset import Store
from synth.testing import hubble_relay

HUBBLE = ROOT / "sample_flows" / "hubble-flows.json.gz"
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1, and the AWS variables that point at it (set for this module)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "synth-test",
           "AWS_SECRET_ACCESS_KEY": "synth-test-secret", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], allow_bucket_creation=True).create_dir("synth")
        yield env
    server.stop()


@pytest.fixture
def bucket(s3_env: dict[str, str], request: pytest.FixtureRequest) -> str:
    """A fresh prefix of the test bucket, as a store URI."""
    return f"s3://synth/{request.node.name.replace('[', '-').replace(']', '')}"


def _flows(store: str) -> int:
    return sum(int(pc.sum(b.column("count")).as_py() or 0) for b in Store(store).read(["count"]))


def _objects(store: str, folder: str) -> list[str]:
    s3 = Store(store)
    selector = pafs.FileSelector(f"{s3.root}/{folder}", recursive=True, allow_not_found=True)
    return [i.path for i in s3.fs.get_file_info(selector) if i.type == pafs.FileType.File]


@pytest.fixture
def flows_file(tmp_path: Path) -> Path:
    """Two hours of the sample shop (1,021 flows): every request to S3 is a round trip, so fewer files."""
    lines = gzip.decompress(HUBBLE.read_bytes()).splitlines(keepends=True)
    path = tmp_path / "shop.json"
    path.write_bytes(b"".join(line for line in lines if re.match(rb'{"flow":{"time":"2026-11-20T1[01]:', line)))
    return path


def _halves(flows_file: Path) -> tuple[Path, Path]:
    tmp_path = flows_file.parent
    lines = flows_file.read_bytes().splitlines(keepends=True)
    even, odd = tmp_path / "even.json", tmp_path / "odd.json"
    even.write_bytes(b"".join(lines[::2]))
    odd.write_bytes(b"".join(lines[1::2]))
    return even, odd


def test_import_edges_generate_compact_and_check_on_s3_match_a_local_store(
    bucket: str, flows_file: Path, tmp_path: Path, synth: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    even, odd = _halves(flows_file)
    local = tmp_path / "local"
    for store in (str(local), bucket):
        result = synth("import", "hubble", even, odd, "--store", store)
        assert result.code == 0, result.err
    assert _flows(bucket) == _flows(str(local)) == 1_021
    edges = synth("edges", "-o", "json", "--store", local).out
    assert synth("edges", "-o", "json", "--store", bucket).out == edges
    compacted = synth("compact", "--older-than", "2026-11-22", "--store", bucket)
    assert compacted.code == 0 and compacted.out.startswith("compacted 2 hours: 4 files -> 2, "), compacted.err
    assert len(Store(bucket).files()) == 2
    assert synth("edges", "-o", "json", "--store", bucket).out == edges
    assert synth("store", "check", "--store", bucket).out == "checked 2 files: all readable\n"
    again = synth("import", "hubble", flows_file, "--store", bucket)
    assert "0 flows imported (1,021 more already in the store)" in again.out
    for run, store in (("out-local", str(local)), ("out-s3", bucket)):
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)
        assert synth("generate", "-n", "shop", "--out", "policies", "--store", store).code == 0
    assert sorted(p.read_text() for p in (tmp_path / "out-s3" / "policies").rglob("*.yaml")) == sorted(
        p.read_text() for p in (tmp_path / "out-local" / "policies").rglob("*.yaml"))
    info = synth("store", "info", "--store", bucket).out
    assert "flows: 1,021 in " in info and "files: 2," in info


def test_collect_into_s3_stores_the_rows_an_import_stores(bucket: str, flows_file: Path, tmp_path: Path,
                                                          synth: Callable[..., Run]) -> None:
    observer = hubble_relay.FakeObserver(hubble_relay.load_responses([flows_file]), nodes=["node-a", "node-b"])
    server, port = hubble_relay.start(observer)
    try:
        report = collect_hubble(Store(bucket), CollectOptions(server=f"127.0.0.1:{port}"), notify=lambda _: None)
    finally:
        hubble_relay.stop(server, observer)
    assert report.stopped == "stream ended"
    local = tmp_path / "local"
    assert synth("import", "hubble", flows_file, "--store", local).code == 0
    assert synth("edges", "-o", "json", "--store", bucket).out == synth("edges", "-o", "json", "--store", local).out
    assert _flows(bucket) == 1_021
    assert "0 flows imported" in synth("import", "hubble", flows_file, "--store", bucket).out


_KILLED_AT_COMMIT = """
import os, signal, sys
from synth.store import dataset, writer
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
dataset.write_commit = writer.write_commit = killed
from synth.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [("import", "hubble"), ("compact", "--older-than", "2026-11-22")])
def test_a_writer_killed_before_its_commit_leaves_nothing_visible(
    command: tuple[str, ...], bucket: str, flows_file: Path, s3_env: dict[str, str], synth: Callable[..., Run]
) -> None:
    if command[0] == "import":
        command = (*command, str(flows_file))
    else:
        even, odd = _halves(flows_file)
        assert synth("import", "hubble", even, odd, "--store", bucket).code == 0
    before = sorted(f.path for f in Store(bucket).files())
    edges = synth("edges", "-o", "json", "--store", bucket).out
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_COMMIT, *command, "--store", bucket],
        env={**os.environ, **s3_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert _objects(bucket, "flows")  # its files are there ...
    assert sorted(f.path for f in Store(bucket).files()) == before  # ... and no reader sees them
    assert synth("edges", "-o", "json", "--store", bucket).out == edges
    assert synth(*command, "--store", bucket).code == 0  # its lock is taken over: its holder is gone
    assert _flows(bucket) == 1_021
    visible = {f.path for f in Store(bucket).files()}
    assert set(_objects(bucket, "flows")) == visible  # what the killed writer left is deleted


def test_a_second_writer_on_s3_is_refused_naming_the_holder(bucket: str, flows_file: Path,
                                                            synth: Callable[..., Run]) -> None:
    store = Store(bucket)
    with store.writing("synth collect hubble --server relay:4245"):
        result = synth("import", "hubble", flows_file, "--store", bucket)
        with (pytest.raises(StoreError, match="being written by `synth collect hubble --server relay:4245` "),
              Store(bucket).writing()):
            pass
    assert result.code == 3
    assert result.err.startswith(f"synth: error: {bucket}: the store is being written by `synth collect hubble "
                                 "--server relay:4245` (pid ")
    assert result.err.endswith("); wait for it to finish, or use another --store\n")
    assert synth("import", "hubble", flows_file, "--store", bucket).code == 0
