"""Request hashes that cost the delta, not the conversation: version 2, chained per list.

A model request repeats the whole conversation every turn, so hashing its canonical JSON each step
(version 1, bare hex) makes hashing cost grow with the square of the run length. Version 2
(``"2:<hex>"``) hashes each list in the request (``messages``, ``tools``, a BYO ``body.messages`` …)
as a chain, ``c_k = sha256(c_{k-1} ‖ sha256(item_k))``, and the rest of the request (its
*skeleton*, lists replaced by null) as canonical JSON; the request hash covers the skeleton and the
head of every chain. A :class:`RequestHasher` keeps, per list, each item's exact encoding
(``marshal``, which tells ``1`` from ``1.0`` and ``True``) and chain value: the next request's list
is compared item by item (about 0.6 µs per message, all in C) and only the items past the common
prefix are canonicalised and hashed. Two requests get the same hash iff their canonical JSON is the
same, as in version 1; a difference anywhere, even in an item already hashed, changes the hash.

Rows hashed with version 1 keep replaying: :func:`hash_version` tells them apart and the journal
hashes the live request the same way the recorded one was hashed.

The stored summary of a version 2 request (``{"v": 2, "skeleton": …, "lists": {path: {"len",
"head", "from", "new"}}}``) carries only the digests of the items new since what earlier steps'
summaries already hold, so summaries, too, grow linearly; :func:`list_differences` rebuilds a
recorded list's digests from them to name the first item that differs.
"""

from __future__ import annotations

import hashlib
import json
import marshal
from dataclasses import dataclass, field
from typing import Any

from beamish.journal._divergence import differences, summarize
from beamish.journal._payload import _reject, canonical

V2 = "2:"
_LIST_SEED = hashlib.sha256(b"beamish-list-v2").digest()
_REQUEST_SEED = b"beamish-request-v2\n"
_MARSHAL_VERSION = 2  # no back-references: equal values always give equal bytes
#: What :func:`~beamish.journal._payload.canonical` builds on every call, built once.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_reject
)


def _canonical(obj: Any) -> str:
    """:func:`canonical` (the same text), without building an encoder per call."""
    try:
        return _ENCODER.encode(obj)
    except (TypeError, ValueError):
        return canonical(obj, "request")  # raises the SpecError naming the bad value


def hash_version(rhash: str) -> int:
    """1 for a bare sha256 hex (the whole canonical request), 2 for ``"2:"`` chained hashes."""
    return 2 if rhash.startswith(V2) else 1


def _mark(item: Any) -> bytes | None:
    try:
        return marshal.dumps(item, _MARSHAL_VERSION)
    except ValueError:  # a type marshal does not take exactly (e.g. a str subclass): always rehash
        return None


@dataclass
class _ListCache:
    marks: list[bytes | None] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    chain: list[bytes] = field(default_factory=list)
    #: How many leading items earlier stored summaries already list (see :meth:`RequestHasher.stored`).
    stored: int = 0


@dataclass(frozen=True)
class ListInfo:
    """One list of a hashed request: its length, chain head and the digests from ``start`` on."""

    length: int
    head: str
    start: int
    digests: tuple[str, ...]


@dataclass(frozen=True)
class Hashed:
    """A version 2 request hash, with what its stored summary needs."""

    hash: str
    skeleton: Any
    lists: dict[str, ListInfo]

    def summary(self) -> dict[str, Any]:
        return {
            "v": 2,
            "skeleton": summarize(self.skeleton),
            "lists": {
                path: {"len": li.length, "head": li.head, "from": li.start, "new": list(li.digests)}
                for path, li in sorted(self.lists.items())
            },
        }


def _split(obj: Any, path: tuple[str, ...], lists: dict[str, list[Any]]) -> Any:
    """``obj`` with every list that is a dict value (at any depth of dicts) replaced by None."""
    if isinstance(obj, list | tuple):
        lists[json.dumps(list(path), ensure_ascii=False)] = list(obj)
        return None
    if isinstance(obj, dict):
        for value in obj.values():
            if isinstance(value, list | tuple | dict):
                return {k: _split(v, (*path, str(k)), lists) for k, v in obj.items()}
        return obj  # nothing to replace: the dict is its own skeleton (no copy)
    return obj


class RequestHasher:
    """Version 2 hashes of one run's successive requests, reusing what the previous ones hashed."""

    def __init__(self) -> None:
        self._lists: dict[str, _ListCache] = {}
        #: Bytes canonicalised and hashed so far (the work that must grow linearly with a run).
        self.hashed_bytes = 0

    def hash(self, request: Any) -> Hashed:
        lists: dict[str, list[Any]] = {}
        skeleton = _split(request, (), lists)
        text = _canonical(skeleton)
        self.hashed_bytes += len(text)
        h = hashlib.sha256(_REQUEST_SEED + text.encode("utf-8"))
        infos: dict[str, ListInfo] = {}
        for path in sorted(lists):
            info = self._chain(path, lists[path])
            infos[path] = info
            h.update(f"\n{path}={info.length}:{info.head}".encode())
        return Hashed(V2 + h.hexdigest(), skeleton, infos)

    def _chain(self, path: str, items: list[Any]) -> ListInfo:
        cache = self._lists.setdefault(path, _ListCache())
        common = 0
        limit = min(len(items), len(cache.marks))
        while common < limit:
            mark = cache.marks[common]
            if mark is None or _mark(items[common]) != mark:
                break
            common += 1
        del cache.marks[common:], cache.digests[common:], cache.chain[common:]
        cache.stored = min(cache.stored, common)
        prev = cache.chain[-1] if cache.chain else _LIST_SEED
        for item in items[common:]:
            body = _canonical(item).encode("utf-8")
            self.hashed_bytes += len(body)
            digest = hashlib.sha256(body).digest()
            prev = hashlib.sha256(prev + digest).digest()
            cache.marks.append(_mark(item))
            cache.digests.append(digest)
            cache.chain.append(prev)
        start = cache.stored
        return ListInfo(len(items), prev.hex(), start, tuple(d.hex() for d in cache.digests[start:]))

    def stored(self, hashed: Hashed) -> None:
        """``hashed``'s summary is in the journal (written, or recorded and replayed): later summaries
        need list only the items past it."""
        for path, info in hashed.lists.items():
            cache = self._lists.get(path)
            if cache is not None and len(cache.digests) == info.length:
                cache.stored = info.length

    def digests(self, path: str) -> list[str]:
        """The item digests of the list at ``path`` in the last hashed request."""
        cache = self._lists.get(path)
        return [] if cache is None else [d.hex() for d in cache.digests]


def rebuild_digests(path: str, summary: dict[str, Any], earlier: list[dict[str, Any]]) -> list[str] | None:
    """A recorded list's item digests from its summary and earlier steps' (newest first); None when
    they cannot be rebuilt (the recorded conversation was not an extension of the earlier ones)."""
    info = summary["lists"][path]
    slots: list[str | None] = [None] * int(info["len"])
    for source in [summary, *earlier]:
        part = source.get("lists", {}).get(path) if isinstance(source, dict) else None
        if not isinstance(part, dict):
            continue
        for offset, d in enumerate(part.get("new", [])):
            i = int(part["from"]) + offset
            if i < len(slots) and slots[i] is None:
                slots[i] = str(d)
        if all(s is not None for s in slots):
            break
    if any(s is None for s in slots):
        return None
    prev = _LIST_SEED
    for s in slots:
        assert s is not None
        prev = hashlib.sha256(prev + bytes.fromhex(s)).digest()
    return [str(s) for s in slots] if prev.hex() == info["head"] else None


def list_differences(
    recorded: dict[str, Any], live: dict[str, Any], earlier: list[dict[str, Any]], hasher: RequestHasher
) -> list[str]:
    """What differs between a recorded and a live version 2 summary: skeleton keys, and for each
    list its lengths and the first item that differs (when the recorded digests can be rebuilt)."""
    out = differences(recorded.get("skeleton"), live.get("skeleton"))
    rec_lists, live_lists = recorded.get("lists", {}), live.get("lists", {})
    for path in sorted(set(rec_lists) | set(live_lists)):
        a, b = rec_lists.get(path), live_lists.get(path)
        name = ".".join(json.loads(path)) or "request"
        if a is None or b is None:
            was, now = ("<absent>" if x is None else x["len"] for x in (a, b))
            out.append(f"{name}: {was} → {now} items")
            continue
        if a["head"] == b["head"]:
            continue
        rebuilt = rebuild_digests(path, recorded, earlier)
        mine = hasher.digests(path)
        if rebuilt is None:
            out.append(f"{name}: {a['len']} → {b['len']} items, the items differ")
            continue
        pairs = enumerate(zip(rebuilt, mine, strict=False))
        first = next((i for i, (x, y) in pairs if x != y), min(len(rebuilt), len(mine)))
        out.append(f"{name}: {a['len']} → {b['len']} items, first difference at index {first}")
    return out
