"""Power loss in the SQLite journal: the WAL cut at every frame (and torn inside frames) still opens,
with every acknowledged step present.

A store is opened and written through the journal's own API (runs, claims, model steps, tool
intents and completions, ledger entries); after each acknowledged write the WAL's size is noted.
The database and WAL files are then copied with the WAL cut at every frame boundary, torn at
offsets inside each frame (the frame header alone, part of its page) and with a frame's bytes
garbled, as a power loss in the middle of a write leaves them. Every image must open as a beamish
store (``open_store``: the application id, the migrations) and hold every write acknowledged
before the cut. (PostgreSQL's durability is its own WAL's; it is not simulated here.)
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from beamish.journal import open_store

pytestmark = pytest.mark.timeout(90)

_WAL_HEADER = 32
_FRAME_HEADER = 24


async def _write_journal(directory: Path) -> list[tuple[int, str, int, str]]:
    """Acknowledged writes as ``(WAL size when acknowledged, run_id, seq, phase)``."""
    db = directory / "beamish.db"
    store = await open_store(f"sqlite:///{db}")
    acks: list[tuple[int, str, int, str]] = []
    wal = directory / "beamish.db-wal"
    try:
        for r in range(3):
            run_id = f"run-{r}"
            await store.create_run("agent", {"task": f"task {r}"}, run_id=run_id)
            epoch = await store.claim_run(run_id, "node-a")
            seq = 0
            for turn in range(4):
                await store.record_step(
                    run_id,
                    seq,
                    epoch,
                    kind="llm",
                    phase="done",
                    request={"turn": turn, "r": r},
                    response={"text": "ok " * (50 * turn)},
                    tokens_in=100,
                    tokens_out=20,
                    cost_usd=0.001,
                    model="scripted",
                )
                acks.append((wal.stat().st_size, run_id, seq, "done"))
                seq += 1
                await store.record_step(
                    run_id,
                    seq,
                    epoch,
                    kind="tool",
                    phase="intent",
                    name="post",
                    effect="once",
                    request={"args": {"text": f"post {r}.{turn}"}},
                )
                acks.append((wal.stat().st_size, run_id, seq, "intent"))
                await store.record_step(
                    run_id,
                    seq,
                    epoch,
                    kind="tool",
                    phase="done",
                    name="post",
                    effect="once",
                    request={"args": {"text": f"post {r}.{turn}"}},
                    response={"posted": True},
                )
                acks.append((wal.stat().st_size, run_id, seq, "done"))
                seq += 1
        # the files as a power loss would find them: the store is still open, nothing checkpointed
        shutil.copy(db, directory / "image.db")
        shutil.copy(wal, directory / "image.db-wal")
    finally:
        await store.close()
    return acks


def _frames(wal: bytes) -> tuple[int, list[int]]:
    """The page size and the offset of every frame."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    frame = _FRAME_HEADER + page_size
    return page_size, list(range(_WAL_HEADER, len(wal) - frame + 1, frame))


async def _open_image(directory: Path, db: bytes, wal: bytes) -> dict[tuple[str, int], str]:
    """Open the image as a store and return its steps' phases; checks the file's integrity."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    (directory / "beamish.db").write_bytes(db)
    (directory / "beamish.db-wal").write_bytes(wal)
    store = await open_store(f"sqlite:///{directory / 'beamish.db'}")
    try:
        rows = await store.fetchall("SELECT run_id, seq, phase FROM steps")
        spend = await store.fetchall("SELECT run_id, seq FROM ledger WHERE kind = 'spend'")
    finally:
        await store.close()
    conn = sqlite3.connect(directory / "beamish.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    phases = {(str(r["run_id"]), int(r["seq"])): str(r["phase"]) for r in rows}
    billed = [(str(r["run_id"]), int(r["seq"])) for r in spend]
    assert len(billed) == len(set(billed)), "a model step was billed twice"
    return phases


def _check(phases: dict[tuple[str, int], str], acks: list[tuple[int, str, int, str]], cut: int) -> None:
    for at, run_id, seq, phase in acks:
        if at > cut:
            continue
        have = phases.get((run_id, seq))
        assert have is not None, f"WAL cut at {cut}: acknowledged step {run_id}:{seq} ({phase}) is gone"
        if phase == "done":
            assert have == "done", f"WAL cut at {cut}: step {run_id}:{seq} went back to {have!r}"


async def test_every_cut_and_tear_of_the_wal_opens_with_every_acknowledged_step(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    acks = await _write_journal(work)
    db = (work / "image.db").read_bytes()
    wal = (work / "image.db-wal").read_bytes()
    page_size, frames = _frames(wal)
    assert acks[-1][0] <= len(wal) and len(frames) > 10

    cases = 0
    image = tmp_path / "image"
    cuts: list[tuple[int, bytes]] = []
    for offset in [*frames, len(wal)]:
        cuts.append((offset, wal[:offset]))  # a whole number of frames reached the disk
    for offset in frames:
        cuts.append((offset, wal[: offset + _FRAME_HEADER]))  # a frame's header without its page
        cuts.append((offset, wal[: offset + _FRAME_HEADER + page_size // 3]))  # a torn page
        garbled = bytearray(wal[: offset + _FRAME_HEADER + page_size])
        garbled[offset + _FRAME_HEADER + page_size // 2] ^= 0xFF  # a frame whose page is garbage
        cuts.append((offset, bytes(garbled)))
    for cut, data in cuts:
        _check(await _open_image(image, db, data), acks, cut)
        cases += 1
    shown = f"{cases} WAL images over {len(frames)} frames, {len(acks)} acknowledged writes"
    print(f"journal power-loss cases: {shown}")
    assert cases == 4 * len(frames) + 1


async def test_the_last_image_holds_every_acknowledged_write_completed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    acks = await _write_journal(work)
    phases = await _open_image(
        tmp_path / "image", (work / "image.db").read_bytes(), (work / "image.db-wal").read_bytes()
    )
    assert len(phases) == len({(r, s) for _, r, s, _ in acks})
    assert set(phases.values()) == {"done"}
