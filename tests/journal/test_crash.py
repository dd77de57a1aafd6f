"""SIGKILL at random points, ≥ 200 times: the journal always holds exactly a committed prefix.

One fork server (``_crash_worker.py``) forks appenders; each is killed after a random number of
acknowledged steps plus a random fraction of the next one. After every kill the journal must hold
steps ``0..m`` with no gap, every acknowledged step complete and intact, at most one step beyond the
last acknowledgement (committed, not yet acknowledged), and exactly one ledger entry per done step.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from beamish.journal import Step, Store, open_store
from beamish.journal._sql import Row, SyncTx
from beamish.journal._steps import load_steps

KILLS = 200
WORKER = Path(__file__).with_name("_crash_worker.py")


class Reader:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def line(self, timeout: float | None = 20.0) -> str | None:
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise AssertionError("the crash worker exited")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\n")
        return head.decode()


def _check_step(step_request: object, response: object, seq: int) -> None:
    assert isinstance(step_request, dict) and step_request["seq"] == seq
    assert response == {"seq": seq, "sha": hashlib.sha256(step_request["blob"].encode()).hexdigest()}


_COUNTS = (
    "SELECT (SELECT COUNT(*) FROM steps WHERE run_id = 'crash') AS n, "
    "(SELECT MAX(seq) FROM steps WHERE run_id = 'crash') AS m, "
    "(SELECT COUNT(*) FROM steps WHERE run_id = 'crash' AND phase = 'done') AS done, "
    "(SELECT COUNT(*) FROM ledger WHERE run_id = 'crash') AS ledger"
)


async def _verify(store: Store, acked: int, checked: int) -> int:
    # One snapshot: on PostgreSQL the killed child's last statement may still be committing.
    def read(tx: SyncTx) -> tuple[Row, list[Step]]:
        counts = tx.fetchone(_COUNTS)
        assert counts is not None
        return counts, load_steps(tx, "crash", checked - 1)

    counts, steps = await store.read(read)
    n, m = int(counts["n"]), -1 if counts["m"] is None else int(counts["m"])
    assert n == m + 1, f"gap in the journal: {n} steps but max seq {m}"
    assert acked <= m <= acked + 1, f"acknowledged up to {acked}, journal holds up to {m}"
    assert counts["done"] == counts["ledger"], "a done step without its ledger entry, or the reverse"
    for step in steps:
        if step.seq <= acked or step.phase == "done":
            assert step.phase == "done", f"acknowledged step {step.seq} is {step.phase}"
            _check_step(step.request, step.response, step.seq)
            assert step.messages == [{"seq": step.seq}]
        else:
            assert step.phase == "intent" and step.seq % 2 == 1 and step.response is None
    return max(0, acked)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sigkill_at_random_points_leaves_exactly_a_committed_prefix(store_url: str) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    store = await open_store(store_url)
    await store.create_run("crasher", None, run_id="crash")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), store_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    reader = Reader(proc)
    acked, checked, mid_step_kills = -1, 0, 0
    try:
        for _ in range(KILLS):
            proc.stdin.write(b"fork\n")
            proc.stdin.flush()
            line = reader.line()
            assert line is not None and line.startswith("pid "), line
            pid = int(line.split()[1])
            for _ in range(rng.randint(0, 4)):  # let it acknowledge a few steps …
                line = reader.line()
                assert line is not None and line.startswith("ack "), line
                acked = int(line.split()[1])
            # … then kill it at a random point of the next one (waiting for an ack, bounded).
            ready, _, _ = select.select([reader.fd], [], [], rng.uniform(0, 0.004))
            mid_step_kills += not ready
            os.kill(pid, signal.SIGKILL)
            proc.stdin.write(f"reap {pid}\n".encode())
            proc.stdin.flush()
            while (line := reader.line()) != f"dead {pid}":
                assert line is not None and line.startswith("ack "), line
                acked = int(line.split()[1])
            checked = await _verify(store, acked, checked)
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait()
        await store.close()
    assert acked > KILLS // 2, f"only {acked + 1} steps acknowledged over {KILLS} kills"
    assert mid_step_kills > KILLS // 4, "too few kills landed between acknowledgements"
