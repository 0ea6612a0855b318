"""The README runs verbatim: every ```console block, in order, with the output it shows.

The blocks run one after another in one fresh `bash`, in a temporary directory that looks like a clone
(the repository folders the README reads are linked in), with the environment the README's set-up gives:
`. .venv/bin/activate`, i.e. the directory of the interpreter running the tests first on PATH, so `synth`
and `python` are this project's. A line `$ CMD` is a command (continued by a trailing backslash or by `> `
lines of a here-document); the lines up to the next `$ ` are its output, stdout and stderr together. A
command ending in `&` is started in the background and its first output lines (as many as the transcript
shows) are waited for before the next command runs; everything started is ended when the README is done.

What changes from run to run is masked by the rules in MASKS, each named for what it hides, and nothing
else: a transcript that drifts fails with a unified diff per command. The stand-in servers' ports are the
one rewrite of the commands themselves (PORTS): the test serves on free ports and shows the README's.

After an intended output change (a merge, a new message), rewrite the transcripts in place and review:

    SYNTH_UPDATE_README=1 .venv/bin/python -m pytest tests/test_readme.py
    git diff README.md

The update keeps a transcript line wherever it matches the new output under the masks, so the volatile
values shown in the README do not churn.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
UPDATE = os.environ.get("SYNTH_UPDATE_README") == "1"

# What a clone holds that the README's commands read (linked, never written: outputs go to the temp dir).
CLONE_ENTRIES = ("sample_flows", "scripts", "tests", "deploy", "examples")

# (what it hides, pattern, replacement): applied to the transcript and to the output alike.
MASKS: tuple[tuple[str, str, str], ...] = (
    ("a live rate", r"\d[\d,]*(\.\d+)? flows/s", "<RATE> flows/s"),
    ("a duration in seconds", r"\b\d+(\.\d+)? s\b", "<SECONDS> s"),
    ("the bytes a store takes on disk", r"\b\d[\d,]* bytes\b", "<BYTES> bytes"),
    ("when an import was committed", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "<IMPORTED-AT>"),
)

# The stand-in servers listen on free ports; their README ports are shown in commands and output.
PORTS = (4245, 7443)

END = "\x1eend-of-command\x1e"


@dataclass(frozen=True)
class Command:
    """One `$ ` line (with its continuation lines) and the output the README shows for it."""

    text: str
    expected: list[str]
    block: int
    first_line: int  # index in README lines of the first output line
    indent: str


def console_blocks(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """(first body line, end line, indent) of every ```console fence, also inside list items; a longer
    fence (````console) holds output with fences of its own."""
    index = 0
    while index < len(lines):
        match = re.fullmatch(r"(\s*)(`{3,})console\s*", lines[index])
        index += 1
        if not match:
            continue
        indent, fence, start = match.group(1), match.group(2), index
        while lines[index].strip() != fence:
            index += 1
        yield start, index, indent
        index += 1


def parse(text: str) -> list[Command]:
    """Every command of every console block, in README order."""
    lines = text.split("\n")
    commands: list[Command] = []
    for number, (start, end, indent) in enumerate(console_blocks(lines)):
        body = [line.removeprefix(indent) for line in lines[start:end]]
        index = 0
        while index < len(body):
            assert body[index].startswith("$ "), f"README.md:{start + index + 1}: output before any command"
            parts = [body[index][2:]]
            heredoc = re.search(r"<<-?'?(\w+)'?", parts[0])
            index += 1
            while parts[-1].endswith("\\") or (heredoc and parts[-1] != heredoc.group(1)):
                assert index < end - start, f"README.md:{start + index}: unfinished command"
                line = body[index]
                parts.append(line[2:] if line.startswith("> ") else line.removeprefix(">"))
                index += 1
            first = index
            while index < len(body) and not body[index].startswith("$ "):
                index += 1
            last = index
            while last > first and not body[last - 1].strip():
                last -= 1  # a blank line before the next command separates, it is no output
            commands.append(Command("\n".join(parts), body[first:last], number, start + first, indent))
    return commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def script(commands: list[Command], ports: dict[int, int]) -> str:
    """One bash script that runs the commands in order and ends each one's output with END."""
    out = ["cd \"$1\""]
    for number, command in enumerate(commands):
        text = command.text
        for readme_port, port in ports.items():
            text = re.sub(rf"\b{readme_port}\b", str(port), text)
        if text.rstrip().endswith("&"):
            log = f".readme-background-{number}.log"
            wanted = len(command.expected)
            out += [
                f": > {log}",
                f"{text.rstrip()[:-1]} >> {log} 2>&1 &",
                f"for _ in $(seq 600); do [ \"$(wc -l < {log})\" -ge {wanted} ] && break; sleep 0.05; done",
                f"cat {log}",
            ]
        else:
            out.append(text)
        out.append(f"__rc=$?; printf '{END}\\n'; (exit $__rc)")
    return "\n".join(out) + "\n"


def run(commands: list[Command], workdir: Path) -> list[list[str]]:
    """Run the commands in a fresh bash; the output lines of each, README ports restored."""
    for entry in CLONE_ENTRIES:
        if (ROOT / entry).exists():
            (workdir / entry).symlink_to(ROOT / entry)
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "VIRTUAL_ENV": str(Path(bindir).parent),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    ports = {readme_port: free_port() for readme_port in PORTS}
    runner = workdir / ".readme.sh"
    runner.write_text(script(commands, ports))
    with subprocess.Popen(
        ["bash", str(runner), str(workdir)], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    ) as shell:
        try:
            output, _ = shell.communicate(timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the stand-in servers started with `&`, if still there
                os.killpg(shell.pid, signal.SIGTERM)
    for readme_port, port in ports.items():
        output = output.replace(str(port), str(readme_port))
    chunks = output.split(END + "\n")
    assert len(chunks) == len(commands) + 1, f"the README stopped early:\n{chunks[-1]}"
    return [chunk.rstrip("\n").split("\n") if chunk.strip("\n") else [] for chunk in chunks[:-1]]


def mask(line: str) -> str:
    for _, pattern, replacement in MASKS:
        line = re.sub(pattern, replacement, line)
    return line.rstrip()


def merged(expected: list[str], actual: list[str]) -> list[str]:
    """The new transcript: the README's line where it matches under the masks, else the actual one."""
    matcher = difflib.SequenceMatcher(a=[mask(x) for x in expected], b=[mask(x) for x in actual], autojunk=False)
    lines: list[str] = []
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        lines += expected[a1:a2] if tag == "equal" else actual[b1:b2]
    return lines


def rewrite(text: str, commands: list[Command], outputs: list[list[str]]) -> str:
    """The README with every transcript body replaced by its merged output."""
    lines = text.split("\n")
    for command, actual in sorted(zip(commands, outputs, strict=True), key=lambda pair: -pair[0].first_line):
        new = [f"{command.indent}{line}".rstrip() for line in merged(command.expected, actual)]
        lines[command.first_line:command.first_line + len(command.expected)] = new
    return "\n".join(lines)


@pytest.mark.slow
def test_the_readme_runs_verbatim(tmp_path: Path) -> None:
    text = README.read_text()
    commands = parse(text)
    outputs = run(commands, tmp_path)
    if UPDATE:
        README.write_text(rewrite(text, commands, outputs))
        return
    drifts = []
    for command, actual in zip(commands, outputs, strict=True):
        want, got = [mask(line) for line in command.expected], [mask(line) for line in actual]
        if want != got:
            header = f"README.md:{command.first_line} $ {command.text}"
            diff = difflib.unified_diff(want, got, "README", "actual", lineterm="", n=2)
            drifts.append("\n".join([header, *list(diff)[2:]]))
    assert not drifts, (
        "README transcripts differ from what the commands print (masks applied; "
        "SYNTH_UPDATE_README=1 rewrites them):\n\n" + "\n\n".join(drifts)
    )


def test_the_parser_reads_commands_outputs_and_heredocs() -> None:
    text = "\n".join([
        "```console", "$ echo a \\", "  b", "a b", "$ cat > f <<'EOF'", "> x: 1", "> EOF", "$ true", "```",
        "- item", "  ```console", "  $ ls", "  f", "  ```", "````console", "$ cat a.md", "```sh", "x", "```", "````",
    ])
    commands = parse(text)
    assert [c.text for c in commands] == ["echo a \\\n  b", "cat > f <<'EOF'\nx: 1\nEOF", "true", "ls", "cat a.md"]
    assert [c.expected for c in commands] == [["a b"], [], [], ["f"], ["```sh", "x", "```"]]
    assert commands[3].indent == "  " and commands[3].block == 1


def test_masks_hide_only_what_they_name() -> None:
    assert mask("26,061 flows stored in 48 files, 1.5 flows/s") == "26,061 flows stored in 48 files, <RATE> flows/s"
    assert mask("files: 52, 1,234,567 bytes") == "files: 52, <BYTES> bytes"
    assert mask("edges 1.99 s") == "edges <SECONDS> s"
    assert mask("2026-11-19T00:00:09Z .. 2026-11-20T23:56:39Z") == "2026-11-19T00:00:09Z .. 2026-11-20T23:56:39Z"


def test_an_update_keeps_lines_that_match_under_the_masks() -> None:
    expected = ["rate 1.5 flows/s", "old line", "same"]
    actual = ["rate 9.9 flows/s", "new line", "same", "added"]
    assert merged(expected, actual) == ["rate 1.5 flows/s", "new line", "same", "added"]
