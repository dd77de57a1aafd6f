"""The memory file: the reference's JSONL format, read so that nothing is lost, written durably.

Reading repairs instead of failing: a line that is not a valid entity or relation goes to a
quarantine file next to the memory file (never dropped), duplicate entities are merged with their
observations united, duplicate relations collapsed. Each repair becomes a :class:`Repair` record
that is printed on stderr and can be raised as a ``memory.repaired`` event. Writing is atomic and
durable: a temp file in the same directory, fsync, rename over the target, fsync of the directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from beamish._events import Event
from beamish.memory._graph import Graph, js_json

RepairKind = Literal["corrupt_line", "invalid_item", "extra_fields", "duplicate_entity", "duplicate_relation"]

#: Identity of a file version: device, inode, size, mtime. Our saves always rename a new inode
#: into place, so any write by any process changes it.
FileIdentity = tuple[int, int, int, int]


@dataclass(frozen=True)
class Repair:
    """One thing loading changed to make the file usable, with where it was (1-based line)."""

    kind: RepairKind
    line: int
    detail: str

    def describe(self) -> str:
        return f"line {self.line}: {self.kind.replace('_', ' ')}: {self.detail}"

    def to_event(self, path: str | os.PathLike[str]) -> Event:
        """The ``memory.repaired`` event the runtime records for this repair."""
        return Event(
            kind="memory.repaired",
            subject=str(path),
            data={"kind": self.kind, "line": self.line, "detail": self.detail},
        )


@dataclass
class Loaded:
    """A parsed file: the graph, what was repaired, and the lines to quarantine."""

    graph: Graph
    repairs: list[Repair] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    dangling: list[tuple[int, str]] = field(default_factory=list)


def quarantine_path(path: Path) -> Path:
    """Where the unusable lines of ``path`` are kept: next to it, ``<name>.quarantine``."""
    return path.with_name(path.name + ".quarantine")


def _is_str_list(value: Any) -> bool:
    return type(value) is list and (not value or set(map(type, value)) == {str})


def _invalid_reason(item: Any) -> str | None:
    if not isinstance(item, dict):
        return f"a JSON {type(item).__name__}, not an object"
    kind = item.get("type")
    if kind == "entity":
        if not isinstance(item.get("name"), str):
            return "entity without a string name"
        if not isinstance(item.get("entityType"), str):
            return "entity without a string entityType"
        if not _is_str_list(item.get("observations")):
            return "entity whose observations are not a list of strings"
        return None
    if kind == "relation":
        for key in ("from", "to", "relationType"):
            if not isinstance(item.get(key), str):
                return f"relation without a string {key!r}"
        return None
    return f"unknown item type {kind!r}"


def _quarantine_record(number: int, raw: bytes, reason: str) -> dict[str, Any]:
    record: dict[str, Any] = {"v": 1, "at": time.time(), "line": number, "reason": reason}
    try:
        record["raw"] = raw.decode()
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode()
    return record


_ENTITY_KEYS = ["type", "name", "entityType", "observations"]
_RELATION_KEYS = ["type", "from", "to", "relationType"]
_KNOWN_KEYS = {"entity": frozenset(_ENTITY_KEYS), "relation": frozenset(_RELATION_KEYS)}
_ENTITY_FRAME = len(js_json({"type": "entity", "name": "", "entityType": "", "observations": []}))
_RELATION_FRAME = len(js_json({"type": "relation", "from": "", "to": "", "relationType": ""}))


def _canonical(text: str, item: dict[str, Any]) -> bool:
    """Whether ``text`` is exactly what the reference would write for ``item``, decided without
    encoding it: with no backslash no string can hold an escape, so with the keys in canonical
    order the line differs from the canonical one only by whitespace, which a length check sees."""
    if "\\" in text:
        return False
    if item["type"] == "entity":
        if list(item) != _ENTITY_KEYS:
            return False
        observations = item["observations"]
        size = _ENTITY_FRAME + len(item["name"]) + len(item["entityType"])
        size += sum(map(len, observations)) + 3 * len(observations) - (1 if observations else 0)
        return len(text) == size
    if list(item) != _RELATION_KEYS:
        return False
    return len(text) == _RELATION_FRAME + len(item["from"]) + len(item["to"]) + len(item["relationType"])


def _leading_object(text: str) -> Any:
    """The JSON object a line starts with when only what follows it is broken, else None."""
    try:
        item, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return item if isinstance(item, dict) and end < len(text) else None


def parse(data: bytes, *, find_dangling: bool = False) -> Loaded:
    """Parse a memory file's bytes into a graph, repairing what the reference would choke on.

    Lines already in canonical form are kept as the graph's cached encoding, so the first save
    after a load does not re-encode the whole graph.
    """
    graph = Graph()
    loaded = Loaded(graph)
    # name -> [first line number, entityType, observations, raw line or None, observation set or None]
    entities: dict[str, list[Any]] = {}
    relations: dict[tuple[str, str, str], tuple[int, bytes | None]] = {}
    if data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors add: not part of any line
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        read = _read_line(number, raw, loaded)
        if read is None:
            continue
        item, line = read
        if item["type"] == "entity":
            _add_entity(entities, number, item, raw, line, loaded)
            continue
        triple = (item["from"], item["to"], item["relationType"])
        if triple in relations:
            detail = f"relation {triple!r} repeats line {relations[triple][0]}"
            loaded.repairs.append(Repair("duplicate_relation", number, detail))
            continue
        relations[triple] = (number, line)
    for name, (_, entity_type, observations, line, _) in entities.items():
        graph.load_entity(name, entity_type, observations, line)
    for (source, target, relation_type), (_, line) in relations.items():
        graph.load_relation(source, target, relation_type, line)
    if find_dangling:
        loaded.dangling.extend(_dangling(relations, entities))
    return loaded


def _read_line(number: int, raw: bytes, loaded: Loaded) -> tuple[dict[str, Any], bytes | None] | None:
    """One line's item and, when it is already canonical, the line to keep as its encoding;
    ``None`` for a blank line or one moved to quarantine (each repair noted in ``loaded``)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        reason = "not valid UTF-8"
        loaded.repairs.append(Repair("corrupt_line", number, f"{reason}; moved to quarantine"))
        loaded.quarantine.append(_quarantine_record(number, raw, reason))
        return None
    if not text or text.isspace():
        return None
    try:
        item = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json can
        reason = f"not JSON ({exc})"
        item = _leading_object(text)
        loaded.quarantine.append(_quarantine_record(number, raw, reason))
        if item is None:
            loaded.repairs.append(Repair("corrupt_line", number, f"{reason}; moved to quarantine"))
            return None
        # a torn write appended to a file without a final newline: the line starts with a
        # whole item that was acknowledged; keep it, and the line as it was in quarantine
        detail = f"{reason}; its leading item kept, the line moved to quarantine"
        loaded.repairs.append(Repair("corrupt_line", number, detail))
    reason_or_none = _invalid_reason(item)
    if reason_or_none is not None:
        loaded.repairs.append(Repair("invalid_item", number, f"{reason_or_none}; moved to quarantine"))
        loaded.quarantine.append(_quarantine_record(number, raw, reason_or_none))
        return None
    extra = set(item) - _KNOWN_KEYS[item["type"]]
    if extra:
        # The file format has no place for them (the reference drops them on its next save):
        # keep the whole line in quarantine so they are not lost.
        reason = f"fields {sorted(extra)} are not part of the format"
        loaded.repairs.append(Repair("extra_fields", number, f"{reason}; original line kept in quarantine"))
        loaded.quarantine.append(_quarantine_record(number, raw, reason))
    return item, (raw if _canonical(text, item) else None)


def _add_entity(
    entities: dict[str, list[Any]], number: int, item: dict[str, Any], raw: bytes, line: bytes | None,
    loaded: Loaded,
) -> None:  # fmt: skip
    """Keep an entity's first line; a repeat merges its new observations into the first."""
    name = item["name"]
    known = entities.get(name)
    if known is None:
        entities[name] = [number, item["entityType"], item["observations"], line, None]
        return
    first_line, first_type, observations, _, present = known
    if present is None:
        present = known[4] = set(observations)
    added = 0
    for o in item["observations"]:
        if o not in present:
            present.add(o)
            observations.append(o)
            added += 1
    known[3] = None  # merged: the kept line no longer holds everything
    detail = f"entity {name!r} repeats line {first_line}; merged, {added} observation(s) added"
    if item["entityType"] != first_type:
        reason = f"duplicate of entity {name!r} with entityType {item['entityType']!r}"
        detail += f"; its entityType {item['entityType']!r} differs, line kept in quarantine"
        loaded.quarantine.append(_quarantine_record(number, raw, reason))
    loaded.repairs.append(Repair("duplicate_entity", number, detail))


def _dangling(
    relations: dict[tuple[str, str, str], tuple[int, bytes | None]], entities: dict[str, list[Any]]
) -> list[tuple[int, str]]:
    out = []
    for (source, target, relation_type), (number, _) in relations.items():
        missing = [end for end in (source, target) if end not in entities]
        if missing:
            triple = (source, target, relation_type)
            out.append((number, f"relation {triple!r} names no entity {', '.join(missing)}"))
    return out


def identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_file(path: Path) -> tuple[bytes, FileIdentity | None]:
    """The file's bytes and identity, or empty bytes and None when it does not exist."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), identity(st)
    except FileNotFoundError:
        return b"", None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> FileIdentity:
    """Replace ``path`` with ``data`` atomically and durably; returns the new file's identity.

    The temp file is named as the reference names its own (``<name>.<hex>.tmp``) and never
    left behind on an error. Only after the directory's fsync does the caller acknowledge.
    """
    ident, old = replace_durably(path, data)
    if old is not None:
        discard(old)
    return ident


def replace_durably(
    path: Path, data: bytes | Sequence[bytes | bytearray]
) -> tuple[FileIdentity, Path | None]:
    """:func:`write_durably`, but the previous version is left under a temp-file name for the
    caller to :func:`discard` after acknowledging: renaming over the last link of a large file
    frees its blocks inside ``rename``, which would otherwise sit on the acknowledgement's path.
    (A leftover is swept like any stray temp file.)"""
    directory = path.parent
    tmp = directory / f"{path.name}.{secrets.token_hex(16)}.tmp"
    try:
        mode: int | None = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    old: Path | None = None
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            for chunk in [data] if isinstance(data, bytes) else data:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if mode is not None:
            old = directory / f"{path.name}.{secrets.token_hex(16)}.tmp"
            try:
                os.link(path, old)
            except OSError:  # no hard links here (or the file just went): free it in rename
                old = None
        os.rename(tmp, path)
    except BaseException:
        for leftover in (tmp, old):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
        raise
    fsync_dir(directory)
    return identity(st), old


def discard(old: Path) -> None:
    """Drop a previous version kept by :func:`replace_durably`."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(old)


def stray_temps(path: Path, older_than_s: float = 0.0) -> list[Path]:
    """Temp files a killed writer left next to ``path`` (never acknowledged data: a commit is
    acknowledged only after its temp file was renamed into place)."""
    pattern = re.compile(re.escape(path.name) + r"\.[0-9a-f]{32}\.tmp$")
    cutoff = time.time() - older_than_s
    found = []
    try:
        for entry in os.scandir(path.parent):
            if pattern.match(entry.name):
                try:
                    if entry.stat().st_mtime <= cutoff:
                        found.append(Path(entry.path))
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return []
    return sorted(found)


def append_quarantine(path: Path, records: list[dict[str, Any]]) -> None:
    """Append quarantined lines (as JSON records) to the quarantine file, durably."""
    if not records:
        return
    target = quarantine_path(path)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(target.parent)


def report(path: Path, repairs: list[Repair]) -> None:
    """Say on stderr what loading repaired (stdout may be the MCP channel)."""
    for repair in repairs:
        print(f"beamish memory: repaired {path}: {repair.describe()}", file=sys.stderr, flush=True)


def resolve_memory_path(
    file: str | os.PathLike[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where the memory lives, decided as the reference decides it.

    An explicit ``file`` wins. Otherwise ``MEMORY_FILE_PATH``: absolute as given, relative joined
    to the base directory. Otherwise ``<base>/memory.jsonl``, after renaming a legacy
    ``<base>/memory.json`` to it when only the legacy file exists. The reference's base is its
    install folder; ours is ``base_dir``, by default the working directory.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if file is not None:
        return Path(file).absolute()
    environ = os.environ if env is None else env
    custom = environ.get("MEMORY_FILE_PATH")
    if custom:
        custom_path = Path(custom)
        return custom_path if custom_path.is_absolute() else base / custom_path
    old, new = base / "memory.json", base / "memory.jsonl"
    if old.exists() and not new.exists():
        print(
            "DETECTED: Found legacy memory.json file, migrating to memory.jsonl for JSONL format"
            " compatibility",
            file=sys.stderr,
        )
        os.rename(old, new)
        print("COMPLETED: Successfully migrated memory.json to memory.jsonl", file=sys.stderr)
    return new
