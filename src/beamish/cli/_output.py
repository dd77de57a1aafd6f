"""Where the CLI writes: two rich consoles that never wrap when the output is not a terminal and
never read markup from what they print (a hint such as ``pip install 'beamish[openai]'`` keeps its
brackets), and one JSON writer for ``--json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions

#: The width used when writing to a pipe or a file: wide enough that no line is ever folded.
PIPE_WIDTH = 1000


class PlainConsole(Console):
    """A console that prints text as given (markup only where asked for with ``markup=True``) and,
    when its output is not a terminal, lays out at :data:`PIPE_WIDTH` without wrapping lines, so what
    a script reads is what was printed, one record per line."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, highlight=False, markup=False)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(max(size.width, PIPE_WIDTH), size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.is_terminal:
            kwargs.setdefault("soft_wrap", True)
        super().print(*objects, **kwargs)


console = PlainConsole()
err = PlainConsole(stderr=True)


def emit_json(value: Any) -> None:
    """One JSON document on one line of stdout (bypassing rich: nothing is styled or folded)."""
    sys.stdout.write(json.dumps(value, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
