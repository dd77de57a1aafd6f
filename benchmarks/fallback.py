"""Fallbacks: how long a step takes to reach the fallback model, with the breaker open vs closed.

An agent names two models: the primary, a local server speaking Anthropic's wire format that answers
every request ``529 overloaded``, and the fallback, a local server speaking OpenAI's that answers at
once; both are driven by the real SDKs through beamish's agent loop on a SQLite journal. Each trial
is one run of one step, timed from its ``run.started`` to its ``run.finished`` event (so queueing and
polling are left out):

- ``closed``: the breaker never opens (``failures`` out of reach): every step spends the primary's
  retries (``--attempts`` requests, backoff ``--backoff`` s doubling, no jitter) before it moves on;
- ``open``: the breaker opened on the first run (and its cool-down outlasts the benchmark): every
  step goes straight to the fallback, without a request to the primary;
- ``direct``: the peer, an agent whose only model is the fallback: the least a step can cost.

Figures: median and p90 per step of each, the ratios open/closed and open/direct, and the requests
the primary received in each mode. Targets: open/closed ≤ 0.25 (the retry cycle is not paid),
open/direct ≤ 1.5 (the breaker's store read is cheap), no request to the primary while open.

Usage: ``python benchmarks/fallback.py [--trials 20] [--attempts 3] [--backoff 0.1]``. Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from beamish import AgentSpec, RetryPolicy
from beamish.agent._breaker import BreakerPolicy
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent._wire import Reply, WireServer, anthropic_error, openai_stream  # noqa: E402

PRIMARY, FALLBACK = "anthropic:claude-primary", "openai:gpt-fallback"


class _Endless(list[Reply]):
    """A reply queue that never runs dry."""

    def __init__(self, reply: Any) -> None:
        super().__init__()
        self.reply = reply

    def __bool__(self) -> bool:
        return True

    def pop(self, index: Any = -1) -> Reply:  # type: ignore[override]
        return self.reply()


async def _mode(
    mode: str, args: argparse.Namespace, primary: WireServer, fallback: WireServer, tmp: Path
) -> dict[str, Any]:
    url = f"sqlite:///{tmp}/{mode}.db"
    options = {
        PRIMARY: {"base_url": primary.url, "api_key": "bench"},
        FALLBACK: {"base_url": f"{fallback.url}/v1", "api_key": "bench"},
    }
    failures = 1 if mode == "open" else 1_000_000
    spec = AgentSpec(
        name="poster",
        instructions="Post the update.",
        model=[FALLBACK] if mode == "direct" else [PRIMARY, FALLBACK],
        model_options={FALLBACK: options[FALLBACK]} if mode == "direct" else options,
        isolation="task",
        retry=RetryPolicy(
            max_attempts=args.attempts, backoff_min_s=args.backoff, backoff_max_s=60.0, jitter=0.0
        ),
        breaker=BreakerPolicy(failures=failures, cooldown_s=3600.0),
    )
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        # a first run, not timed: it warms the clients up and, in ``open``, opens the breaker
        await node.result(await node.submit("poster", "warm up"), timeout=60)
        before = len(primary.requests)
        ids = []
        for i in range(args.trials):
            rid = await node.submit("poster", f"post {i}")
            result = await node.result(rid, timeout=60)
            assert result.status == "succeeded", (mode, result)
            ids.append(rid)
        primary_requests = len(primary.requests) - before
    store = await open_store(url)
    try:
        seconds = []
        for rid in ids:
            events = {
                e.kind: e.at
                for _, e in await store.events(kinds=("run.started", "run.finished"), subject=rid)
            }
            seconds.append(events["run.finished"] - events["run.started"])
        answered = {(await store.steps(rid))[-1].name for rid in ids}
    finally:
        await store.close()
    seconds.sort()
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 2),
        "p90_ms": round(seconds[int(0.9 * (len(seconds) - 1))] * 1000, 2),
        "primary_requests": primary_requests,
        "answered_by": sorted(answered),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with WireServer() as primary, WireServer() as fallback:
        primary.replies = _Endless(lambda: anthropic_error(529, "overloaded_error"))
        fallback.replies = _Endless(lambda: Reply(events=openai_stream("posted")))
        with tempfile.TemporaryDirectory() as tmp:
            return {
                mode: await _mode(mode, args, primary, fallback, Path(tmp))
                for mode in ("closed", "open", "direct")
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--attempts", type=int, default=3, help="the primary's attempts per step")
    parser.add_argument("--backoff", type=float, default=0.1, help="the first retry's wait, seconds")
    args = parser.parse_args()
    logging.getLogger("beamish").setLevel(logging.ERROR)  # each fallback is logged; not measured here
    figures = asyncio.run(main_async(args))
    closed, opened, direct = figures["closed"], figures["open"], figures["direct"]
    open_closed = opened["median_ms"] / closed["median_ms"]
    open_direct = opened["median_ms"] / direct["median_ms"]
    cycle_s = sum(args.backoff * 2**n for n in range(args.attempts - 1))
    for name, f in (("closed", closed), ("open", opened), ("direct", direct)):
        print(
            f"  {name:<7} step median {f['median_ms']:.1f} ms, p90 {f['p90_ms']:.1f} ms; "
            f"{f['primary_requests']} requests to the primary over {args.trials} steps"
        )
    print(
        f"  open / closed {open_closed:.3f}x (the closed breaker pays {args.attempts} attempts and "
        f"{cycle_s:.2f} s of backoff a step); open / direct {open_direct:.3f}x"
    )
    out: dict[str, Any] = {
        "benchmark": "fallback",
        "trials": args.trials,
        "attempts": args.attempts,
        "backoff_s": args.backoff,
        "closed": closed,
        "open": opened,
        "direct": direct,
        "open_closed_ratio": round(open_closed, 4),
        "open_direct_ratio": round(open_direct, 4),
        "targets": {"open_closed_ratio_max": 0.25, "open_direct_ratio_max": 1.5, "open_primary_requests": 0},
    }
    out["meets_target"] = open_closed <= 0.25 and open_direct <= 1.5 and opened["primary_requests"] == 0
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
