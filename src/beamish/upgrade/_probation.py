"""The rollback guard: an upgraded agent is on probation, and goes back if it does worse than before.

For ``window_s`` (on the injected clock) after an upgrade, the guard compares the new version with
the one it replaced, on what semantic supervision already tells apart: *crashes* (runs failed as
crashed or hung, and the agent's process exiting so), *loops* (runs paused or failed as looping),
*overspending* (runs stopped by their budget, or a mean cost per finished run well above the previous
version's). The previous version is measured over the same time just before the upgrade (crashes) and
over its last runs (run outcomes, spend). A version that does worse on any of them, by at least
``min_bad`` incidents, is rolled back; one that survives the window is kept.

Overspending is judged by who wrote the version. A version an agent proposed goes back like any
other; a person's own change (a ``reload`` of the config, an operator's upgrade) may well cost more on
purpose — a dearer model, a raised price — so it is flagged (an ``agent.flagged`` event, a mark in
``status``) and stays. Crashes and loops roll back anyone's version.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from beamish._events import Event

#: Exit kinds that count against a version. ``killed`` does not: a kill comes from outside (an
#: operator, the OOM killer, a fault plan), and a kill for a hang is reported as ``hung``.
_CRASH_KINDS = ("crashed", "hung")
#: How many of the previous version's runs make its baseline.
_BASELINE_RUNS = 20


@dataclass(frozen=True)
class ProbationRules:
    """``window_s``: how long an upgrade is on probation. ``min_bad``: incidents of one kind the new
    version must reach before it is judged. ``spend_factor``: how much costlier per run it may be."""

    window_s: float = 300.0
    min_bad: int = 2
    spend_factor: float = 1.5
    min_runs_for_spend: int = 2


@dataclass
class Tally:
    """What one version did: crashes, finished runs, looping runs, budget stops and spend."""

    crashes: int = 0
    runs: int = 0
    loops: int = 0
    over_budget: int = 0
    spend_usd: float = 0.0

    @property
    def mean_spend(self) -> float:
        return self.spend_usd / self.runs if self.runs else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "crashes": self.crashes,
            "runs": self.runs,
            "loops": self.loops,
            "over_budget": self.over_budget,
            "spend_usd": round(self.spend_usd, 6),
        }


class Verdict(NamedTuple):
    """Why a version on probation does worse than the one it replaced, and on which count."""

    kind: Literal["crashes", "loops", "spend"]
    why: str


def by_agent(author: str) -> bool:
    """Whether a version's author is an agent (``agent:<name>``, from ``propose_upgrade``); every
    other author (``person``, ``config``, an operator's name) is a person."""
    return author.startswith("agent:")


@dataclass
class Trial:
    """One upgrade on probation."""

    agent: str
    version: int
    previous: int
    started: float
    until: float
    baseline_crashes: int
    crashes: int = 0
    #: Store time from which the new version's runs count: a version made active again is judged on
    #: what it does now, not on the runs that got it rolled back before.
    since: float | None = None
    #: Who rolled the version out: an agent's proposal is rolled back for overspending, a person's flagged.
    author: str = "person"
    #: Set once a person's version was flagged for overspending (flagged once per probation).
    flagged: str | None = None


@dataclass
class CrashLog:
    """Crash times per agent, from the node's ``child.exited`` events (kept for one window)."""

    keep_s: float
    times: dict[str, deque[float]] = field(default_factory=dict)

    def note(self, event: Event, now: float) -> str | None:
        """Record ``event`` if it is an agent's crash; returns the agent's name then."""
        if event.kind != "child.exited":
            return None
        reason = event.data.get("reason")
        kind = reason.get("kind") if isinstance(reason, dict) else None
        if kind not in _CRASH_KINDS:
            return None
        agent = event.subject.rsplit("/", 1)[-1]
        times = self.times.setdefault(agent, deque())
        times.append(now)
        while times and times[0] < now - 2 * self.keep_s:
            times.popleft()
        return agent

    def count(self, agent: str, start: float, end: float) -> int:
        return sum(1 for t in self.times.get(agent, ()) if start <= t < end)


async def tally_runs(
    store: Any, agent: str, version: int, *, limit: int = _BASELINE_RUNS, since: float | None = None
) -> Tally:
    """Outcomes of the agent's most recent runs that started on ``version`` (created at ``since`` or
    later, if given)."""
    tally = Tally()
    seen = 0
    offset = 0
    while seen < limit:
        batch = await store.list_runs(agent=agent, limit=100, offset=offset)
        if not batch:
            break
        offset += len(batch)
        for run in batch:
            if since is not None and run.created_at < since:
                return tally  # newest first: the rest are older still
            if run.meta.get("agent_version") != version or seen >= limit:
                continue
            reason = getattr(run.reason, "kind", None)
            if run.status in ("succeeded", "failed", "paused", "needs_attention"):
                seen += 1
                tally.runs += 1
                tally.spend_usd += float(run.spend_usd or 0.0)
            if run.status == "failed" and reason in _CRASH_KINDS:
                tally.crashes += 1
            if reason == "looping":
                tally.loops += 1
            elif reason == "over_budget":
                tally.over_budget += 1
        if len(batch) < 100:
            break
    return tally


def verdict(rules: ProbationRules, trial: Trial, new: Tally, old: Tally) -> Verdict | None:
    """Why the new version does worse than the previous one, or None while it does no worse.
    Crashes and loops are judged before spend, so a version that does both goes back."""
    new.crashes += trial.crashes
    old.crashes += trial.baseline_crashes
    if new.crashes >= rules.min_bad and _rate(new.crashes, new) > _rate(old.crashes, old):
        return Verdict(
            "crashes",
            f"version {trial.version} crashed {new.crashes} times in {new.runs} runs on probation "
            f"(version {trial.previous}: {old.crashes} in its last {old.runs} runs)",
        )
    if new.loops >= rules.min_bad and _rate(new.loops, new) > _rate(old.loops, old):
        return Verdict(
            "loops",
            f"version {trial.version} looped in {new.loops} of {new.runs} runs "
            f"(version {trial.previous}: {old.loops} of {old.runs})",
        )
    if new.over_budget >= rules.min_bad and _rate(new.over_budget, new) > _rate(old.over_budget, old):
        return Verdict(
            "spend",
            f"version {trial.version} overspent its budget in {new.over_budget} of {new.runs} runs "
            f"(version {trial.previous}: {old.over_budget} of {old.runs})",
        )
    if (
        new.runs >= rules.min_runs_for_spend
        and old.runs >= rules.min_runs_for_spend
        and old.mean_spend > 0
        and new.mean_spend > old.mean_spend * rules.spend_factor
    ):
        return Verdict(
            "spend",
            f"version {trial.version} spends ${new.mean_spend:.4f} per run, more than "
            f"{rules.spend_factor:g}x version {trial.previous}'s ${old.mean_spend:.4f}",
        )
    return None


def _rate(count: int, tally: Tally) -> float:
    return count / tally.runs if tally.runs else float(count > 0)
