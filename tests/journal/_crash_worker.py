"""A fork server for the SIGKILL crash test (run as a script; not collected by pytest).

Commands on stdin: ``fork`` → a child that appends steps to run ``crash`` forever, printing
``ack <seq>`` after each commit; ``reap <pid>`` → wait for that (killed) child and print
``dead <pid>``. Everything a child printed is in the pipe before its ``dead`` line. Forking from a
process that has imported beamish but never started a loop or a thread keeps each child cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from beamish.journal import open_store

RUN = "crash"


def blob(seq: int) -> str:
    """Deterministic step content; every 7th one crosses the payload threshold (stored by hash)."""
    size = 5000 if seq % 7 == 3 else 200 + (seq * 37) % 900
    return hashlib.sha256(str(seq).encode()).hexdigest() * (size // 64 + 1)


async def append_forever(url: str, zygote: int) -> None:
    store = await open_store(url, payload_threshold=2048)
    epoch = await store.claim_run(RUN, f"child-{os.getpid()}")
    row = await store.fetchone("SELECT MAX(seq) AS m FROM steps WHERE run_id = ?", [RUN])
    seq = 0 if row is None or row["m"] is None else int(row["m"]) + 1
    if seq > 0:
        last = await store.step(RUN, seq - 1)
        if last is not None and last.phase == "intent":
            seq -= 1  # finish the effect step the previous child left open
    while os.getppid() == zygote and seq < 100_000:
        body = blob(seq)
        request = {"seq": seq, "blob": body}
        response = {"seq": seq, "sha": hashlib.sha256(body.encode()).hexdigest()}
        if seq % 2:  # a two-phase effect step
            existing = await store.step(RUN, seq)
            if existing is None:
                await store.record_step(
                    RUN,
                    seq,
                    epoch,
                    kind="tool",
                    phase="intent",
                    request=request,
                    effect="idempotent",
                    name="effect",
                )
            await store.record_step(
                RUN,
                seq,
                epoch,
                kind="tool",
                phase="done",
                request=request,
                effect="idempotent",
                name="effect",
                response=response,
                cost_usd=0.001,
                messages=[{"seq": seq}],
            )
        else:
            await store.record_step(
                RUN,
                seq,
                epoch,
                kind="llm",
                phase="done",
                request=request,
                response=response,
                cost_usd=0.001,
                messages=[{"seq": seq}],
            )
        os.write(1, f"ack {seq}\n".encode())
        seq += 1


def main() -> None:
    url = sys.argv[1]
    if url.startswith("postgresql"):
        import psycopg_pool  # noqa: F401  (preloaded once, not per child)
    me = os.getpid()
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    asyncio.run(append_forever(url, me))
                finally:
                    os._exit(0)
            os.write(1, f"pid {pid}\n".encode())
        elif cmd == "reap":
            os.waitpid(int(arg), 0)
            os.write(1, f"dead {arg}\n".encode())


if __name__ == "__main__":
    main()
