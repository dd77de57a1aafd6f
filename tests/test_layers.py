"""The code flows one way: the import contracts hold, and beamish imports its own modules at module
level, except where a heavy dependency only one feature needs would slow every start-up."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: (importer, function, imported module) → why the import waits until the function runs.
LAZY = {
    (
        "beamish.memory",
        "__getattr__",
        "beamish.memory._server",
    ): "the MCP SDK (~1.8 s); KnowledgeGraph users skip it",
    ("beamish.company._memory_service", "MemoryService._serve", "beamish.memory._server"): (
        "the MCP SDK (~1.8 s), first imported in a worker thread so the node's loop never stalls"
    ),
    ("beamish.company._memory_service", "MemoryService._serve", "beamish._serve"): (
        "uvicorn (~0.1 s), only when the memory server starts"
    ),
    ("beamish.cli._run", "run_company", "beamish.dashboard"): "starlette + uvicorn, only with --dashboard",
    (
        "beamish.cli._company",
        "dashboard",
        "beamish.dashboard",
    ): "starlette + uvicorn, only for `beamish dashboard`",
    (
        "beamish.cli._demo",
        "_DemoScreen.on_tick",
        "beamish.dashboard",
    ): "starlette + uvicorn, only with --dashboard",
    ("beamish.cli", "main", "beamish.cli._app"): (
        "typer and every command's imports, after `beamish run` prestarted its process template"
    ),
    ("beamish.cli", "__getattr__", "beamish.cli._app"): "the typer app, loaded on first use (see main)",
    (
        "beamish.cli._memory",
        "serve",
        "beamish.memory._server",
    ): "the MCP SDK, only for `beamish memory serve`",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (SRC / "beamish").rglob("*.py")}


class _Imports(ast.NodeVisitor):
    """Every import of a beamish module, with the function it sits in ("" at module level)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.scope: list[str] = []
        self.found: list[tuple[str, str, int]] = []  # (function, imported module, line)

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _function(self) -> str:
        # a class body at module level is module level; a method is a function
        return ".".join(self.scope) if self.scope and not self.scope[-1][0].isupper() else ""

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "beamish":
                self.found.append((self._function(), alias.name, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "beamish":
            return
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            self.found.append((self._function(), sub if sub in MODULES else target, node.lineno))


def _imports() -> list[tuple[str, str, str, int]]:
    found = []
    for module, path in sorted(MODULES.items()):
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text()))
        found += [(module, function, target, line) for function, target, line in visitor.found]
    return found


@pytest.mark.timeout(120)
def test_the_import_contracts_hold() -> None:
    """Layers, independent peers, no cycles between subpackages, a core without the web stack."""
    # lint_imports configures logging, which disables every logger that exists (beamish.runtime's
    # among them): give them back, or a later test in this process sees no log records.
    enabled = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:
        for logger in enabled:
            logger.disabled = False


def test_in_function_imports_of_beamish_are_the_listed_lazy_ones() -> None:
    inside = {(m, f, t) for m, f, t, _ in _imports() if f}
    assert inside == set(LAZY), (
        "an import of a beamish module inside a function: move it to module level, or (only for a "
        "heavy import one feature needs) add it to LAZY with its reason"
    )


def test_each_lazy_import_says_why_on_its_line() -> None:
    for module, function, target, line in _imports():
        if function:
            text = MODULES[module].read_text().splitlines()[line - 1]
            assert "# lazy:" in text, f"{module}:{line} ({function} -> {target}) has no '# lazy:' reason"


def test_no_module_imports_the_root_package() -> None:
    """``import beamish`` inside beamish runs the root ``__init__`` (every layer) from below."""
    offenders = [f"{m}:{line}" for m, _, t, line in _imports() if t == "beamish" and m != "beamish"]
    assert offenders == []
