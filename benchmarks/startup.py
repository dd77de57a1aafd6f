"""Start-up: `beamish run` of the solo company, from the command to its first served run.

    .venv/bin/python benchmarks/startup.py [--trials 5]

The company is `beamish init --template solo` (eight agents on the offline scripted model, the
memory server, the scheduler). Each trial starts `beamish run`, submits a task to the CEO over the
control socket as soon as it answers, and stops the clock when the store says the run succeeded:

* cold: a fresh folder (a new store, a new memory file);
* after a SIGKILL: the same folder again, right after the previous node was killed with SIGKILL
  (a stale control socket, runs and leases left behind; what the chaos soak's restarts do).

Peers, measured in the same run on the same interpreter: `python -c pass` (an interpreter's floor)
and `python -c "import anthropic, openai"` (the provider SDKs a real company loads). Figures are
medians in seconds, with the ratios. Ends with one JSON line of figures, targets and verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from beamish.company._control import ControlUnavailable, control_path, control_request
from beamish.journal import open_store

BEAMISH = str(Path(sys.executable).parent / "beamish")
TARGET_S = 1.0


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


async def _first_run(folder: Path, tag: str) -> tuple[float, subprocess.Popen[bytes]]:
    """Seconds from starting `beamish run` to the CEO's first run succeeded; the node is left running."""
    sock = control_path(f"sqlite:///{folder / 'state' / 'beamish.db'}", folder)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [BEAMISH, "run", "beamish.toml"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    request = {"op": "submit", "agent": "ceo", "task": "Morning planning", "run_id": tag}
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"beamish run exited with {proc.returncode}: {proc.stderr.read().decode()}")
        try:
            await control_request(sock, request, timeout=5.0)
            break
        except ControlUnavailable:
            await asyncio.sleep(0.005)
    store = await open_store(f"sqlite:///{folder / 'state' / 'beamish.db'}")
    try:
        while (await store.get_run(tag)).status not in ("succeeded", "failed", "paused"):
            await asyncio.sleep(0.005)
        run = await store.get_run(tag)
    finally:
        await store.close()
    if run.status != "succeeded":
        proc.kill()
        raise SystemExit(f"the first run {tag} ended {run.status}: {run.reason}")
    return time.perf_counter() - start, proc


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(30)


async def _trial(root: Path, n: int) -> tuple[float, float]:
    folder = root / f"solo{n}"
    subprocess.run([BEAMISH, "init", str(folder), "--template", "solo"], check=True, capture_output=True)
    cold, proc = await _first_run(folder, f"cold-{n}")
    _stop(proc, signal.SIGKILL)
    warm, proc = await _first_run(folder, f"after-kill-{n}")
    _stop(proc, signal.SIGTERM)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="beamish-startup-"))
    try:
        colds, kills, floors, sdks = [], [], [], []
        for n in range(args.trials):
            cold, warm = asyncio.run(_trial(root, n))
            colds.append(cold)
            kills.append(warm)
            floors.append(_seconds([sys.executable, "-c", "pass"]))
            sdks.append(_seconds([sys.executable, "-c", "import anthropic, openai"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {
        "cold_s": round(statistics.median(colds), 3),
        "after_sigkill_s": round(statistics.median(kills), 3),
        "python_pass_s": round(statistics.median(floors), 3),
        "import_sdks_s": round(statistics.median(sdks), 3),
    }
    ratios = {
        "cold_vs_python_pass": round(figures["cold_s"] / figures["python_pass_s"], 1),
        "cold_vs_import_sdks": round(figures["cold_s"] / figures["import_sdks_s"], 2),
        "after_sigkill_vs_import_sdks": round(figures["after_sigkill_s"] / figures["import_sdks_s"], 2),
    }
    print(
        f"beamish run → first served run, cold:          {figures['cold_s']:.3f} s (median of {args.trials})"
    )
    print(f"beamish run → first served run, after SIGKILL: {figures['after_sigkill_s']:.3f} s")
    print(
        f"python -c pass:                                {figures['python_pass_s']:.3f} s  "
        f"(cold is {ratios['cold_vs_python_pass']}x)"
    )
    print(
        f"python -c 'import anthropic, openai':          {figures['import_sdks_s']:.3f} s  "
        f"(cold is {ratios['cold_vs_import_sdks']}x)"
    )
    met = {"cold": figures["cold_s"] <= TARGET_S, "after_sigkill": figures["after_sigkill_s"] <= TARGET_S}
    print(
        json.dumps(
            {
                "figures": figures,
                "ratios": ratios,
                "targets_s": {"cold": TARGET_S, "after_sigkill": TARGET_S},
                "met": met,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
