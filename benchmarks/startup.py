"""Start-up: `beamish run`, from the command to its first served run.

    .venv/bin/python benchmarks/startup.py [--trials 5] [--template minimal|solo|both]

Two companies, each made by `beamish init` on the offline scripted model with a SQLite store:

* minimal (the target): one agent, one tool, one schedule; the run asks the assistant the time;
* solo: eight agents, the memory server, the scheduler; the run is the CEO's morning planning,
  whose first step searches the shared memory (so it waits for the memory server's MCP SDK import).

Each trial starts `beamish run`, submits the task over the control socket as soon as it answers,
and stops the clock when the store says the run succeeded:

* cold: a fresh folder (a new store, a new memory file);
* after a SIGKILL: the same folder again, right after the previous node was killed with SIGKILL
  (a stale control socket, runs and leases left behind; what the chaos soak's restarts do).

Peers, measured in the same run on the same interpreter: `python -c pass` (an interpreter's floor)
and `python -c "import anthropic, openai"` (the provider SDKs a real company loads). Figures are
medians in seconds, with the ratios, and the load average when the run began and ended (this
machine may be shared). Ends with one JSON line of figures, targets and verdicts.
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


#: Per template: the agent asked, its task (one its script answers), and where the store lives.
COMPANIES = {
    "minimal": ("assistant", "What time is it?", "beamish.db"),
    "solo": ("ceo", "Morning planning", "state/beamish.db"),
}


async def _first_run(folder: Path, template: str, tag: str) -> tuple[float, subprocess.Popen[bytes]]:
    """Seconds from starting `beamish run` to the first run succeeded; the node is left running."""
    agent, task, db = COMPANIES[template]
    url = f"sqlite:///{folder / db}"
    sock = control_path(url, folder)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [BEAMISH, "run", "beamish.toml"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    request = {"op": "submit", "agent": agent, "task": task, "run_id": tag}
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"beamish run exited with {proc.returncode}: {proc.stderr.read().decode()}")
        try:
            await control_request(sock, request, timeout=5.0)
            break
        except ControlUnavailable:
            await asyncio.sleep(0.005)
    store = await open_store(url)
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


async def _trial(root: Path, template: str, n: int) -> tuple[float, float]:
    folder = root / f"{template}{n}"
    subprocess.run([BEAMISH, "init", str(folder), "--template", template], check=True, capture_output=True)
    cold, proc = await _first_run(folder, template, f"cold-{n}")
    _stop(proc, signal.SIGKILL)
    warm, proc = await _first_run(folder, template, f"after-kill-{n}")
    _stop(proc, signal.SIGTERM)
    return cold, warm


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--template", choices=["minimal", "solo", "both"], default="both")
    args = parser.parse_args()
    templates = ["minimal", "solo"] if args.template == "both" else [args.template]
    load_before = _load()
    root = Path(tempfile.mkdtemp(prefix="beamish-startup-"))
    times: dict[str, dict[str, list[float]]] = {t: {"cold": [], "after_sigkill": []} for t in templates}
    floors, sdks = [], []
    try:
        for n in range(args.trials):
            for template in templates:
                cold, warm = asyncio.run(_trial(root, template, n))
                times[template]["cold"].append(cold)
                times[template]["after_sigkill"].append(warm)
            floors.append(_seconds([sys.executable, "-c", "pass"]))
            sdks.append(_seconds([sys.executable, "-c", "import anthropic, openai"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peers = {
        "python_pass_s": round(statistics.median(floors), 3),
        "import_sdks_s": round(statistics.median(sdks), 3),
    }
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    for template in templates:
        for kind in ("cold", "after_sigkill"):
            figure = figures[f"{template}_{kind}_s"] = round(statistics.median(times[template][kind]), 3)
            ratios[f"{template}_{kind}_vs_python_pass"] = round(figure / peers["python_pass_s"], 1)
            ratios[f"{template}_{kind}_vs_import_sdks"] = round(figure / peers["import_sdks_s"], 2)
    figures.update(peers)
    load_after = _load()
    print(f"load average (1, 5, 15 min): {load_before} before, {load_after} after; {os.cpu_count()} cpus")
    for template in templates:
        for kind, label in (("cold", "cold"), ("after_sigkill", "after SIGKILL")):
            key = f"{template}_{kind}"
            print(
                f"beamish run ({template}) → first served run, {label + ':':14} {figures[key + '_s']:.3f} s "
                f"(median of {args.trials}; {ratios[key + '_vs_import_sdks']}x importing the SDKs, "
                f"{ratios[key + '_vs_python_pass']}x python -c pass)"
            )
    print(f"python -c pass:                        {peers['python_pass_s']:.3f} s")
    print(f"python -c 'import anthropic, openai':  {peers['import_sdks_s']:.3f} s")
    targets = {f"{t}_{kind}": TARGET_S for t in templates for kind in ("cold", "after_sigkill")}
    met = {key: figures[f"{key}_s"] <= target for key, target in targets.items()}
    print(
        json.dumps(
            {
                "figures": figures,
                "ratios": ratios,
                "targets_s": targets,
                "met": met,
                "load": {"before": load_before, "after": load_after},
                "cpus": os.cpu_count(),
                "trials": args.trials,
            }
        )
    )


if __name__ == "__main__":
    main()
