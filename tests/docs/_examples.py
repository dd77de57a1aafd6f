"""The code examples of the README and the docs, read from their Markdown.

A fenced block may be preceded (on the line just above its fence) by a marker the tests honour:

- ``<!-- example: skip "why" -->``: not run (it needs a key, a network, root…); the reason is required
  and the skips are counted;
- ``<!-- example: continues -->``: a ``python`` block that runs after the page's previous python block,
  in the same program (a page that builds an example up in steps);
- ``<!-- example: scaffold "PATH" -->``: the block is what ``beamish init --template minimal`` writes
  at PATH (a ``toml`` block without the file's comment header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARKER = re.compile(r'^\s*<!-- example: (?P<kind>skip|continues|scaffold)(?: "(?P<arg>[^"]*)")? -->\s*$')


@dataclass(frozen=True)
class Example:
    """One fenced block: where it is, its language, its code and its marker."""

    path: Path
    line: int
    lang: str
    code: str
    marker: str | None
    arg: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(path: Path) -> list[Example]:
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Example] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = len(fence["indent"]), fence["lang"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{{indent}}}```\s*$", lines[i]):
            body.append(lines[i][indent:])
            i += 1
        marker = _MARKER.match(lines[start - 1]) if start else None
        found.append(
            Example(
                path=path,
                line=start + 1,
                lang=lang,
                code="\n".join(body) + "\n",
                marker=marker["kind"] if marker else None,
                arg=marker["arg"] if marker else None,
            )
        )
        i += 1
    return found


def all_examples() -> list[Example]:
    return [example for page in pages() for example in examples(page)]


def program(example: Example) -> str:
    """The code a python example runs: its own, after the blocks it continues."""
    page = [e for e in examples(example.path) if e.lang == "python"]
    index = next(i for i, e in enumerate(page) if e.line == example.line)
    chain = [example]
    while chain[0].marker == "continues":
        index -= 1
        if index < 0:
            raise AssertionError(f"{example.id}: 'continues' with no python block before it")
        chain.insert(0, page[index])
    return "\n".join(e.code for e in chain)
