"""The layers import one way, and the pure layers do no I/O: an AST scan of every module of synth/.

    cli -> app -> render -> policy -> core -> store.schema -> base
                  app -> collect -> sources -> store -> base

A rule nobody checks erodes in a week, so each rule here names the module and the import that broke it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "synth"

# What each layer may import from synth (besides itself). A layer not listed here may import any layer.
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "store": frozenset({"base"}),
    "sources": frozenset({"base", "store.schema", "_proto"}),
    "collect": frozenset({"base", "store", "sources", "_proto"}),
    "core": frozenset({"base", "store.schema"}),
    "policy": frozenset({"base", "core", "store.schema"}),
    "render": frozenset({"base", "core", "policy", "store.schema", "store.coverage", "templates"}),
    "app": frozenset({"base", "store", "sources", "collect", "core", "policy", "render"}),
    "cli": frozenset({"base", "app", "render", "store", "sources", "collect", "core", "policy"}),
}
# Modules of the standard library that touch files, processes or the network.
IO_MODULES = frozenset(
    {"os", "io", "pathlib", "shutil", "subprocess", "socket", "tempfile", "glob", "gzip", "sys", "fcntl", "signal"}
)
PURE_LAYERS = ("core", "policy")
# Third-party modules that only one place may import.
OWNED = {
    "click": ("cli",),
    "jinja2": ("render.jinja",),
    "grpc": ("sources.transport", "sources.hubble.client", "sources.calico.stream", "testing"),
}


@dataclass(frozen=True)
class Import:
    """One imported module name, where it was imported."""

    module: str  # the importing module, dotted, without the `synth.` prefix
    target: str  # the imported module, absolute
    names: tuple[str, ...]  # names taken from it (`from X import a, b`)
    line: int
    lazy: bool  # inside a function

    def where(self) -> str:
        return f"synth/{self.module.replace('.', '/')}.py:{self.line}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    lazy_lines = {
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno, node.lineno in lazy_lines)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = tuple(alias.name for alias in node.names)
            target = node.module
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")
                package = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                target = ".".join(["synth", *package, node.module])
            yield Import(module, target, names, node.lineno, node.lineno in lazy_lines)


def _all_imports() -> list[Import]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) if "_proto" not in path.parts for found in _imports(path)]


def _layer(module: str) -> str:
    return module.split(".", 1)[0]


def _within(name: str, allowed: frozenset[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _synth_targets(found: Import) -> list[str]:
    """The synth modules an import reaches (`from synth.x import y` may name the module `synth.x.y`)."""
    if found.target == "synth":
        return list(found.names)
    if not found.target.startswith("synth."):
        return []
    return [found.target.removeprefix("synth.")]


def direction_violations(imports: list[Import]) -> list[str]:
    """Every import of a synth module that its layer may not import."""
    broken = []
    for found in imports:
        layer = _layer(found.module)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue
        for target in _synth_targets(found):
            if target == "__version__" or _layer(target) == layer:
                continue
            if not _within(target, allowed):
                broken.append(f"{found.where()}: {layer} imports synth.{target}")
    return broken


def io_violations(imports: list[Import], layer: str) -> list[str]:
    """Imports of I/O modules or exit codes by a module of a pure layer."""
    broken = []
    for found in imports:
        if _layer(found.module) != layer:
            continue
        if found.target.split(".")[0] in IO_MODULES:
            broken.append(f"{found.where()}: imports {found.target}")
        if any(name.startswith("EXIT_") for name in found.names):
            broken.append(f"{found.where()}: imports exit codes {', '.join(found.names)}")
    return broken


def io_calls(path: Path, name: str) -> list[str]:
    """Calls of open() and print() in one module (`name` for the messages)."""
    return [
        f"{name}:{node.lineno}: calls {node.func.id}()"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"open", "print"}
    ]


def owner_violations(imports: list[Import], library: str) -> list[str]:
    """Imports of `library` outside the modules that own it."""
    owners = frozenset(OWNED[library])
    return [
        f"{found.where()}: imports {library}"
        for found in imports
        if found.target.split(".")[0] == library and not _within(found.module, owners)
    ]


def test_layers_import_one_way() -> None:
    broken = direction_violations(_all_imports())
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_core_and_policy_do_no_io_and_know_no_exit_codes(layer: str) -> None:
    broken = io_violations(_all_imports(), layer)
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        broken += io_calls(path, str(path.relative_to(ROOT)))
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("library", sorted(OWNED))
def test_libraries_with_one_owner(library: str) -> None:
    broken = owner_violations(_all_imports(), library)
    assert not broken, "\n".join(broken)


def test_nothing_imports_the_test_support_package() -> None:
    broken = [
        f"{found.where()}: imports {found.target}"
        for found in _all_imports()
        if _layer(found.module) != "testing" and any(_layer(t) == "testing" for t in _synth_targets(found))
    ]
    assert not broken, "\n".join(broken)


def test_the_scan_catches_what_it_should(tmp_path: Path) -> None:
    """Each rule fires on a module that breaks it, and the scan resolves the import forms used."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nimport click\nfrom synth.store.dataset import Store\nfrom synth.base.errors import EXIT_OK\n"
        "from synth import app\n\ndef f():\n    import jinja2\n    return open('x')\n"
    )
    tree = ast.parse(bad.read_text())
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [Import("core.bad", a.name, (), node.lineno, False) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports.append(Import("core.bad", node.module, tuple(a.name for a in node.names), node.lineno, False))
    assert direction_violations(imports) == [
        "synth/core/bad.py:3: core imports synth.store.dataset",
        "synth/core/bad.py:5: core imports synth.app",
    ]
    assert io_violations(imports, "core") == [
        "synth/core/bad.py:1: imports os",
        "synth/core/bad.py:4: imports exit codes EXIT_OK",
    ]
    assert owner_violations(imports, "click") == ["synth/core/bad.py:2: imports click"]
    assert owner_violations(imports, "jinja2") == ["synth/core/bad.py:8: imports jinja2"]
    assert io_calls(bad, "bad.py") == ["bad.py:9: calls open()"]
    assert not direction_violations([Import("core.ok", "synth.store.schema", ("FLOW_SCHEMA",), 1, False)])

