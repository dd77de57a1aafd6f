"""The node's side of live upgrades: record a version, roll it out, keep it on probation, roll back.

One :class:`Upgrader` per node. A rollout follows OTP's rule for a changed child spec: the agent
takes the new version at its next (re)start — the node's agent registry hands it the new spec then —
and a live agent switches between two runs, never mid-run. Versions proposed by agents (through
``propose_upgrade``, from any process) wait in the store; the upgrader's poller rolls them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import SpecError
from beamish._tasks import cancel_and_wait
from beamish.agent._runs import Runs, runs_of
from beamish.agent._spec import AgentSpec
from beamish.upgrade._probation import CrashLog, ProbationRules, Trial, by_agent, tally_runs, verdict
from beamish.upgrade._versions import AgentVersion, Versions, definition_of, diff, spec_of

logger = logging.getLogger("beamish.upgrade")

#: Keys of an agent's definition a proposal may change (never its name, isolation, hooks or entry).
PROPOSABLE = (
    "instructions",
    "model",
    "tools",
    "budget",
    "watchdog",
    "policy",
    "max_tokens",
    "max_turns",
    "consults",
)
#: Keys whose value is a typed object stored as ``{"type", "data"}``: a change merges into ``data``.
_OBJECTS = ("budget", "watchdog", "policy")


def apply_changes(
    definition: Mapping[str, Any], changes: Mapping[str, Any], allowed: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """``definition`` with ``changes`` applied, validated by building the agent from it."""
    if not isinstance(changes, Mapping) or not changes:
        raise SpecError("an upgrade needs changes: a mapping of definition keys to new values")
    new = dict(definition)
    for key, value in changes.items():
        if key not in new or key in ("v", "name", "version"):
            raise SpecError(f"an upgrade cannot change {key!r}: not a key of the agent's definition")
        if allowed is not None and key not in allowed:
            raise SpecError(f"an upgrade cannot change {key!r}; proposals may change {list(allowed)}")
        current = new[key]
        if key == "watchdog" and value is None and current is not None and allowed is not None:
            raise SpecError(
                "a proposal cannot switch an agent's watchdog off (that leaves it unprotected from "
                "hangs and loops); only a person's upgrade may"
            )
        if key in _OBJECTS and isinstance(value, Mapping) and "type" not in value:
            if current is None:
                raise SpecError(f"an upgrade cannot merge into {key!r}: the agent has none to change")
            value = {"type": current["type"], "data": {**current["data"], **value}}
        new[key] = value

    try:
        AgentSpec.from_json(new)
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"the upgraded definition is invalid: {type(exc).__name__}: {exc}") from exc
    return new


class Upgrader:
    """Live upgrades on ``node`` with ``store``; probation windows on ``clock`` (the node's if None)."""

    def __init__(
        self,
        node: Any,
        store: Any,
        *,
        clock: Clock | None = None,
        rules: ProbationRules | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.node = node
        self.store = store
        self.versions = Versions(store)
        self.clock: Clock = clock or node.clock
        self.rules = rules or ProbationRules()
        self.poll_s = poll_s
        self.trials: dict[str, Trial] = {}
        self.crashes = CrashLog(self.rules.window_s)
        #: Per agent, the keys in which the config file differs from the active version (reported).
        self.drift: dict[str, list[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.node.add_event_sink(self._on_event)
        self._task = asyncio.create_task(self._watch(), name="beamish-upgrades")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.node.remove_event_sink(self._on_event)
        await cancel_and_wait(self._task)
        self._task = None

    def _registry(self) -> Runs:
        return runs_of(self.node)

    # -- versions -----------------------------------------------------------------------------------
    async def register(
        self, spec: Any, *, author: str = "config", reason: str = "started from config"
    ) -> Any:
        """The version ``spec`` (the agent as the config file says) starts with on this node, and the
        versioned spec handed to the agent: see :meth:`Versions.adopt`. A version that replaced
        another here, or was on probation when the node stopped, is on probation; a config file that
        differs from the version that runs is reported as drift."""
        async with self._lock:
            adopted = await self.versions.adopt(spec.name, definition_of(spec), author=author, reason=reason)
            active = adopted.active
            if adopted.replaced is not None:
                await self._switched(active, adopted.replaced, author=author, reason=reason)
            else:
                self._registry().upgrades[spec.name] = spec_of(active)
                if active.fallback is not None:  # on probation when the node stopped: still is
                    await self._try(active, active.fallback, since=active.trial_since, author=active.author)
                    if (active.detail or "").startswith("flagged: "):
                        self.trials[spec.name].flagged = active.detail
                await self.report_drift(spec.name)
        return self._registry().upgrades[spec.name]

    async def upgrade(
        self,
        agent: str,
        *,
        author: str,
        reason: str,
        changes: Mapping[str, Any] | None = None,
        spec: Any = None,
    ) -> AgentVersion:
        """A person's (or a test's) upgrade: ``changes`` to the active definition, or a whole ``spec``.
        A definition an earlier version had makes that version active again (on probation)."""
        active = await self.versions.active(agent)
        if active is None:
            raise SpecError(f"no agent named {agent!r} has a version on this node")
        if spec is not None:
            definition = definition_of(spec)
        else:
            definition = apply_changes(active.definition, changes or {})
        if not diff(active.definition, definition):
            return active
        earlier = await self.versions.same(agent, definition)
        if earlier is not None:
            return await self.roll_out(earlier, author=author, reason=reason)
        version = await self.versions.record(
            agent, definition, author=author, reason=reason, state="proposed"
        )
        return await self.roll_out(version)

    async def roll_out(
        self, version: AgentVersion, *, author: str | None = None, reason: str | None = None
    ) -> AgentVersion:
        """Make ``version`` active and hand it to the agent; its previous version is the fallback.
        ``author`` and ``reason`` say who rolls it out now, if not the version's own author."""
        async with self._lock:
            previous = await self.versions.active(version.agent)
            try:
                spec_of(version)
            except Exception as exc:
                await self.versions.set_state(version.agent, version.version, "refused", str(exc))
                raise
            await self.versions.activate(version.agent, version.version)
            await self._switched(
                version, previous, author=author or version.author, reason=reason or version.reason
            )
        return await self.versions.get(version.agent, version.version)

    async def _switched(
        self, version: AgentVersion, previous: AgentVersion | None, *, author: str, reason: str
    ) -> None:
        """``version`` is active now in place of ``previous``: tell the agent, put it on probation."""
        told = self._registry().upgrade(spec_of(version))
        prev = previous.version if previous is not None else None
        if prev is not None:
            await self._try(version, prev, since=self.store.clock.time(), author=author)
        changed = [k for k, _, _ in diff(previous.definition, version.definition)] if previous else []
        await self._emit(
            Event(
                "agent.upgraded",
                version.agent,
                {
                    "agent": version.agent,
                    "version": version.version,
                    "previous": prev,
                    "author": author,
                    "reason": reason,
                    "changed": changed,
                    "live": told,
                    "probation_s": self.rules.window_s if prev is not None else None,
                },
            )
        )
        await self.report_drift(version.agent)

    async def _try(self, version: AgentVersion, fallback: int, *, since: float | None, author: str) -> None:
        """Probation for ``version`` from now, against ``fallback``; noted in the store, so a restart
        within the window starts it again instead of dropping it."""
        now = self.clock.time()
        window = self.rules.window_s
        self.trials[version.agent] = Trial(
            agent=version.agent,
            version=version.version,
            previous=fallback,
            started=now,
            until=now + window,
            baseline_crashes=self.crashes.count(version.agent, now - window, now),
            since=since,
            author=author,
        )
        at = since if since is not None else self.store.clock.time()
        await self.versions.put_on_probation(version.agent, version.version, fallback, at)

    async def rollback(self, agent: str, why: str, *, only: int | None = None) -> AgentVersion:
        """Back to the version the current one replaced; the current one is marked rolled back.
        With ``only``, nothing happens unless version ``only`` is still the active one: two looks
        that judged the same trial at once roll it back once, not it and then its predecessor."""
        async with self._lock:
            active = await self.versions.active(agent)
            if only is not None and (active is None or active.version != only):
                return active if active is not None else await self.versions.get(agent, only)
            trial = self.trials.pop(agent, None)
            if active is None:
                raise SpecError(f"agent {agent!r} has no active version to roll back")
            target = trial.previous if trial is not None else None
            if target is None:
                older = [v for v in await self.versions.history(agent) if v.version < active.version]
                if not older:
                    raise SpecError(f"agent {agent!r} has no version before {active.version}")
                target = older[-1].version
            back = await self.versions.get(agent, target)
            await self.versions.activate(agent, target, previous_state="rolled_back")
            await self.versions.set_state(agent, active.version, "rolled_back", why)
            told = self._registry().upgrade(spec_of(back))
            await self._emit(
                Event(
                    "agent.rolled_back",
                    agent,
                    {"agent": agent, "from": active.version, "to": target, "why": why, "live": told},
                )
            )
            await self.report_drift(agent)
        return back

    async def report_drift(self, agent: str) -> None:
        """Compare the active version with the agent's definition in the config file the company
        last read; an ``agent.drift`` event when the difference appears, changes or goes away."""
        config = await self.versions.config(agent)
        active = await self.versions.active(agent)
        if config is None or active is None:
            return
        changed = [k for k, _, _ in diff(active.definition, config)]
        if changed == self.drift.get(agent, []):
            return
        same = await self.versions.same(agent, config) if changed else None
        if changed:
            self.drift[agent] = changed
        else:
            self.drift.pop(agent, None)
        await self._emit(
            Event(
                "agent.drift",
                agent,
                {
                    "agent": agent,
                    "active": active.version,
                    "changed": changed,
                    "config_version": same.version if same is not None else None,
                    "config_state": same.state if same is not None else None,
                },
            )
        )

    # -- watching -----------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        agent = self.crashes.note(event, self.clock.time())
        if agent is not None and agent in self.trials:
            self.trials[agent].crashes += 1

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("upgrade watch failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.poll_s)

    async def check(self) -> None:
        """One look: roll out proposed versions, judge the upgrades on probation."""
        for proposal in await self.versions.proposed():
            if proposal.agent not in self._registry().refs:
                continue  # not an agent running on this node: the node that runs it rolls it out
            try:
                await self.roll_out(proposal)
            except Exception as exc:
                logger.warning("proposed version %s of %s refused: %s", proposal.version, proposal.agent, exc)
        await self._follow_store()
        now = self.clock.time()
        for agent, trial in list(self.trials.items()):
            new = await tally_runs(self.store, agent, trial.version, since=trial.since)
            old = await tally_runs(self.store, agent, trial.previous)
            found = verdict(self.rules, trial, new, old)
            if found is not None and (found.kind != "spend" or by_agent(trial.author)):
                await self.rollback(agent, found.why, only=trial.version)
            elif found is not None and trial.flagged is None:
                await self._flag(trial, found.why)
            elif found is None and now >= trial.until:
                self.trials.pop(agent, None)
                passed = "passed probation" + (f" ({trial.flagged})" if trial.flagged else "")
                await self.versions.set_state(agent, trial.version, "active", passed)

    async def _flag(self, trial: Trial, why: str) -> None:
        """A person's version that overspends stays: the person chose it. Say so once, where
        operators look (the event log, ``status``), and keep judging it for crashes and loops."""
        trial.flagged = f"flagged: {why}"
        await self.versions.note(trial.agent, trial.version, trial.flagged)
        await self._emit(
            Event(
                "agent.flagged",
                trial.agent,
                {"agent": trial.agent, "version": trial.version, "author": trial.author, "why": why},
            )
        )

    async def _follow_store(self) -> None:
        """Take versions made active elsewhere (another node's rollout or rollback): the agent starts
        with the store's active version wherever it runs next."""
        async with self._lock:
            registry = self._registry()
            for agent, number in (await self.versions.active_numbers()).items():
                spec = registry.upgrades.get(agent)
                if spec is not None and spec.version != number:
                    self.trials.pop(agent, None)
                    registry.upgrade(spec_of(await self.versions.get(agent, number)))
                    await self.report_drift(agent)

    async def _emit(self, event: Event) -> None:
        await self.store.append_event(event)
        self.node.emit(event)
