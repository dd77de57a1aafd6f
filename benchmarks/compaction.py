"""Compaction: tokens and cost of one long conversation with context management vs without.

The same scripted 100-turn conversation (each turn a few sentences and one tool call whose result is
a ~1.5 KB page, so the history grows as a research agent's does) runs twice through the real agent
loop on a SQLite journal:

- ``without``: ``AgentSpec(context=None)`` on a model with no declared window, so every turn resends
  the whole history (the cost of a conversation nobody trims);
- ``with``: ``ContextLimit(window=--window)`` and the default policy, ``compact``: at 80 % of the
  window the older turns are summarized by the model (those calls are counted and priced too).

Both are priced by one rate (``--input``/``--output`` USD per million tokens, Claude Sonnet's list
price by default) with no prompt caching: a provider's cache makes resent history cheaper, so the
``without`` figure is the uncached worst case. Tokens are the scripted model's counts (about four
bytes a token of what was sent). Figures: input and output tokens, cost, model calls, compactions,
the largest request, and the ratios with/without. Targets: no request over the window, the largest
request within the window, cost with compaction at most half the cost without. The scripted
summary is a fixed ~600-token text, as long as a real summary, so its output and its place in the
context are paid for; its quality is not what is measured here.

Usage: ``python benchmarks/compaction.py [--turns 100] [--window 16000]``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import beamish
from beamish import AgentSpec, Budget, ContextLimit, Price, Watchdog
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec


@beamish.tool
async def read_page(n: int) -> str:
    """Read page ``n`` of the corpus (a deterministic ~1.5 KB page).

    Args:
        n: The page number.
    """
    lines = [
        f"page {n}, line {i}: figures {n * 37 + i} and {n * 11 - i}; see ref-{n:04d}-{i}." for i in range(24)
    ]
    return "\n".join(lines)


def _script(path: Path, turns: int, window: int | None) -> None:
    data: dict[str, Any] = {
        "turns": [
            {
                "text": f"Turn {i}: reading page {i} for the report; noting its figures as I go.",
                "tool_calls": [{"name": "read_page", "arguments": {"n": i}}],
            }
            for i in range(turns)
        ]
        + [{"text": "The report is done; the last page read was: {last_tool}"}],
        "call_log": str(path.with_suffix(".calls.jsonl")),
        # a summary as long as a real one (~600 tokens), so its output and its place in the
        # context are paid for as they would be
        "summary": "Read pages so far ({chars} characters folded); their figures: " + "figure 0000, " * 180,
    }
    if window is not None:
        data["context_window"] = window
    path.write_text(json.dumps(data))


async def _one(
    directory: Path, name: str, turns: int, context: ContextLimit | None, prices: Price
) -> dict[str, Any]:
    script = directory / f"{name}.json"
    _script(script, turns, None)
    spec = AgentSpec(
        name="writer",
        instructions="You write research reports from the corpus.",
        model=f"scripted:{script}",
        tools=[read_page],
        isolation="task",
        watchdog=Watchdog(max_steps=None),
        max_tokens=1024,
        max_turns=turns + 5,
        budget=Budget(prices={"scripted:*": prices}),
        context=context,
    )
    url = f"sqlite:///{directory}/{name}.db"
    started = time.perf_counter()
    async with Node(store=url) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        await node.submit("writer", "Write the report", run_id=name)
        result = await node.result(name, timeout=600)
    elapsed = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"{name}: the run {result.status}: {result.reason}")
    async with await open_store(url) as store:
        steps = await store.steps(name)
        run = await store.get_run(name)
        events = [e.data for _, e in await store.events(0, kinds=["run.compacted"], subject=name)]
    calls = [json.loads(line) for line in script.with_suffix(".calls.jsonl").read_text().splitlines()]
    paid = [s for s in steps if s.kind in ("llm", "compact") and s.name != "trim"]
    return {
        "status": result.status,
        "model_calls": sum(1 for s in steps if s.kind == "llm"),
        "compaction_calls": sum(1 for s in steps if s.kind == "compact" and s.name != "trim"),
        "compactions": len(events),
        "input_tokens": sum(s.tokens_in for s in paid),
        "output_tokens": sum(s.tokens_out for s in paid),
        "cost_usd": round(run.spend_usd, 6),
        "largest_request_tokens": max(c["tokens"] + c["max_tokens"] for c in calls),
        "over_window": sum(1 for c in calls if c.get("over_window")),
        "tokens_saved_by_compaction": sum(e["tokens_saved"] for e in events),
        "wall_s": round(elapsed, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    prices = Price(args.input, args.output)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        without = await _one(directory, "without", args.turns, None, prices)
        with_ = await _one(directory, "with", args.turns, ContextLimit(window=args.window), prices)
    return {"without": without, "with": with_}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--window", type=int, default=16_000)
    parser.add_argument("--input", type=float, default=3.0, help="USD per million input tokens")
    parser.add_argument("--output", type=float, default=15.0, help="USD per million output tokens")
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    without, with_ = figures["without"], figures["with"]
    tokens_ratio = (with_["input_tokens"] + with_["output_tokens"]) / (
        without["input_tokens"] + without["output_tokens"]
    )
    cost_ratio = with_["cost_usd"] / without["cost_usd"]
    for name, f in (("without", without), ("with", with_)):
        print(
            f"  {name:<8} {f['model_calls']} model calls + {f['compaction_calls']} compaction calls: "
            f"{f['input_tokens']:,} in / {f['output_tokens']:,} out tokens, ${f['cost_usd']:.4f}; "
            f"largest request {f['largest_request_tokens']:,} tokens; over the window {f['over_window']}"
        )
    print(f"  with / without: tokens {tokens_ratio:.3f}x, cost {cost_ratio:.3f}x (window {args.window:,})")
    out: dict[str, Any] = {
        "benchmark": "compaction",
        "turns": args.turns,
        "window": args.window,
        "price_per_mtok": {"input": args.input, "output": args.output},
        "without": without,
        "with": with_,
        "tokens_ratio": round(tokens_ratio, 4),
        "cost_ratio": round(cost_ratio, 4),
        "targets": {"over_window": 0, "largest_request_max": args.window, "cost_ratio_max": 0.5},
    }
    out["meets_target"] = (
        with_["over_window"] == 0 and with_["largest_request_tokens"] <= args.window and cost_ratio <= 0.5
    )
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
