"""Generate synth/_proto/{flow,relay,observer,goldmane,flowbatch} from proto/ with grpcio-tools.

    python scripts/gen_proto.py              # regenerate the checked-in code
    python scripts/gen_proto.py --out DIR    # generate elsewhere (the staleness test does this)

protoc writes imports as `from flow import flow_pb2`, which only works with the output folder on
sys.path; they are rewritten to `from synth._proto.flow import flow_pb2` so the installed package
works. `*_pb2_grpc.py` files of packages without a service are not kept (they would only import grpc).
The generated code checks at import time that the grpcio and protobuf runtimes are at least the
versions grpcio-tools was built for; `version_free()` strips those version lines for comparisons.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "synth" / "_proto"
# Package → its .proto file (Cilium's are named after the package, Goldmane's is `api.proto` upstream).
PROTO_NAMES = {"flow": "flow", "relay": "relay", "observer": "observer", "goldmane": "api", "flowbatch": "flowbatch"}
PACKAGES = tuple(PROTO_NAMES)
PROTO_FILES = tuple(f"{package}/{name}.proto" for package, name in PROTO_NAMES.items())

_IMPORT = re.compile(rf"^from ({'|'.join(PACKAGES)})(\.| import )", re.MULTILINE)
# Lines that name the grpcio-tools / protobuf version that generated the file.
_VERSION_LINES = re.compile(
    r"^(# Protobuf Python Version: .*|GRPC_GENERATED_VERSION = .*"
    r"|_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:    .*\n)*?\))$",
    re.MULTILINE,
)


def generate(out: Path) -> list[Path]:
    """Run protoc into a scratch folder, rewrite imports, copy into `out/<package>/`; returns written files."""
    from grpc_tools import protoc  # a test/dev dependency, not needed at runtime

    include = Path(protoc.__file__).parent / "_proto"
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"--pyi_out={scratch}",
            *PROTO_FILES,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for package in PACKAGES:
            target = out / package
            target.mkdir(parents=True, exist_ok=True)
            (target / "__init__.py").touch()
            for generated in sorted((Path(scratch) / package).iterdir()):
                text = generated.read_text()
                if generated.name.endswith("_pb2_grpc.py") and not re.search(r"^class \w+Stub\b", text, re.MULTILINE):
                    continue
                destination = target / generated.name
                destination.write_text(_IMPORT.sub(r"from synth._proto.\1\2", text))
                written.append(destination)
    (out / "__init__.py").touch()
    return written


def version_free(text: str) -> str:
    """The generated text without the lines that name generator versions."""
    return _VERSION_LINES.sub("<version>", text)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: synth/_proto)")
    args = parser.parse_args(argv)
    if args.out == DEFAULT_OUT:
        for package in PACKAGES:
            for stale in (DEFAULT_OUT / package).glob("*_pb2*"):
                stale.unlink()
    for path in generate(args.out):
        print(path.relative_to(args.out.parent) if args.out == DEFAULT_OUT else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
