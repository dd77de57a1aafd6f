"""``beamish memory check`` and ``repair``: look at a memory file without the server.

Checking never writes. Repairing takes the same lock as the server, so it is safe while servers
run; it quarantines what cannot be kept, rewrites the file durably and removes temp files that a
killed writer left behind. It also puts a file with appended entities out of place (a server
killed before it compacted) back in the reference's layout; that is not a defect, so check
does not report it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from beamish.memory._append import tail_size
from beamish.memory._jsonl import (
    Loaded,
    Repair,
    append_quarantine,
    parse,
    read_file,
    stray_temps,
    write_durably,
)
from beamish.memory._lock import FileLock


@dataclass
class CheckReport:
    """What a check found: repairs loading would make, relations naming no entity (the reference
    allows them, so they are reported, not changed), and leftover temp files."""

    path: Path
    exists: bool
    entities: int = 0
    relations: int = 0
    repairs: list[Repair] = field(default_factory=list)
    dangling: list[tuple[int, str]] = field(default_factory=list)
    stray_temp_files: list[Path] = field(default_factory=list)

    @classmethod
    def of(cls, path: Path, exists: bool, loaded: Loaded, stray_temp_files: list[Path]) -> CheckReport:
        """The report on a parsed file, the same for check and repair."""
        return cls(
            path=path,
            exists=exists,
            entities=loaded.graph.entity_count,
            relations=loaded.graph.relation_count,
            repairs=loaded.repairs,
            dangling=loaded.dangling,
            stray_temp_files=stray_temp_files,
        )

    @property
    def clean(self) -> bool:
        return not (self.repairs or self.dangling or self.stray_temp_files)

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.entities} entities, {self.relations} relations"]
        if not self.exists:
            out[0] = f"{self.path}: no such file (an empty graph)"
        out += [repair.describe() for repair in self.repairs]
        out += [f"line {number}: dangling relation: {detail}" for number, detail in self.dangling]
        out += [f"stray temp file: {p.name}" for p in self.stray_temp_files]
        out.append("clean" if self.clean else "not clean")
        return out


def check_file(path: str | os.PathLike[str]) -> CheckReport:
    """Read ``path`` and report everything that is not clean; changes nothing."""
    target = Path(path).absolute()
    data, ident = read_file(target)
    loaded = parse(data, find_dangling=True)
    return CheckReport.of(target, ident is not None, loaded, stray_temps(target))


def repair_file(path: str | os.PathLike[str]) -> CheckReport:
    """Repair ``path`` in place under the file lock; returns what was found and fixed.

    Dangling relations are kept (the reference accepts them) and only reported.
    """
    target = Path(path).absolute()
    lock = FileLock(target)
    try:
        with lock:
            data, ident = read_file(target)
            loaded = parse(data, find_dangling=True)
            canonical = loaded.graph.encode()
            if loaded.repairs or (ident is not None and tail_size(data, canonical)):
                append_quarantine(target, loaded.quarantine)
                write_durably(target, canonical)
                lock.bump_generation()
            strays = stray_temps(target)
            for stray in strays:
                stray.unlink(missing_ok=True)
    finally:
        lock.close()
    return CheckReport.of(target, ident is not None, loaded, strays)
