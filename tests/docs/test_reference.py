"""The reference pages are generated from the code and cover it: every command, every config key the
shipped examples use, every public name; and the site builds with warnings as errors."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

import beamish
from beamish.cli import app

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_page_has_every_command_and_each_of_its_options() -> None:
    page = _hooks().cli_markdown()
    root: Any = typer.main.get_command(app)

    def walk(command: Any, path: str) -> None:
        if command.hidden:
            return
        assert f"`{path}`" in page, path
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt != "--help" and not getattr(param, "hidden", False):
                    assert f"`{opt}`" in page, f"{path} {opt}"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(root, "beamish")
    for name in ("submit", "show", "backup", "restore", "node drain", "memory serve"):
        assert f"## `beamish {name}`" in page or f"### `beamish {name}`" in page, name


def _key_paths(data: dict[str, Any], prefix: str = "") -> set[str]:
    """The key paths a real beamish.toml uses, with names (agents, groups, limits) as NAME."""
    named = {"agents", "groups", "limits"}
    paths: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key in named and isinstance(value, dict):
            for inner in value.values():
                paths |= _key_paths(inner, f"{path}.NAME.") if isinstance(inner, dict) else set()
        elif isinstance(value, dict) and key not in {"if_args", "model_options"}:
            paths |= _key_paths(value, f"{path}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                paths |= _key_paths(item, f"{path}[].")
        else:
            paths.add(path)
    return paths


def test_the_config_page_has_every_key_the_shipped_configs_use() -> None:
    hooks = _hooks()
    documented = {row[0] for row in hooks.config_keys()}
    page = hooks.config_markdown()
    configs = [
        ROOT / "examples" / "solo_company" / "beamish.toml",
        ROOT / "deploy" / "docker" / "company.toml",
    ]
    used: set[str] = set()
    for config in configs:
        used |= _key_paths(tomllib.loads(config.read_text()))
    missing = sorted(path for path in used if path not in documented)
    assert not missing, missing
    for path in documented:
        assert f"`{path.rsplit('.', 1)[-1]}`" in page


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None, reason="no mkdocs")
def test_the_site_builds_strict_and_the_api_page_documents_every_public_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-q", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "reference" / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="(beamish\.[\w.]+)"', api))
    missing = [n for n in beamish.__all__ if n != "__version__" and f"beamish.{n}" not in anchors]
    assert not missing, missing


def test_no_page_tells_users_to_import_a_private_module() -> None:
    """``beamish.x._y`` is private; a page may point at a source file (``beamish/agent/_x.py``) to read,
    never at a private module to import or call."""
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    private = re.compile(r"beamish(\.[a-z]\w*)*\._[a-z]\w*")
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in pages for m in private.finditer(p.read_text())]
    assert not found, found


def test_the_readme_stays_short_and_points_into_the_docs() -> None:
    """The README is the front door (≤ ~250 lines); guides, reference and figures live in docs/."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "the README grew past 250 lines: move the detail into docs/"
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:2] == ["On a fresh machine", "Why"] and "Your first agent" in headings
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link
