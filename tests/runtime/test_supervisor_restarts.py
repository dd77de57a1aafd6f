"""Restarts (supervisor_SUITE: restart matrix, strategies, intensity, escalation, nested trees)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamish import (
    ActorExited,
    ActorRef,
    Backoff,
    ChildSpec,
    Crashed,
    ExitReason,
    Node,
    Normal,
    Shutdown,
    SupervisorRef,
    SupervisorSpec,
)
from beamish.testing import EventLog, FakeClock, settle, wait_for_child, wait_for_restart

from ._actors import FailsAfterFirst, FailsWhileFlagged, Journal, Worker

pytestmark = pytest.mark.timeout(10)


def worker(tag: str, journal: Journal, **spec: Any) -> ChildSpec:
    return ChildSpec(tag, Worker, args=(tag, journal), **spec)


async def ref_of(sup: SupervisorRef, child_id: Any) -> ActorRef:
    for child in await sup.which_children():
        if child.id == child_id:
            assert child.ref is not None, f"{child_id} is not running"
            return child.ref
    raise AssertionError(f"no child {child_id}")


async def crash(ref: ActorRef, reason: ExitReason | None = None) -> None:
    """End ``ref`` by itself: a crash, or a self-stop with ``reason``."""
    if reason is None:
        with pytest.raises(ActorExited):
            await ref.call(("crash", "boom"))
    else:
        await ref.call(("exit", reason))
        await ref.wait()


# -- the termination matrix: exit kind x restart type ------------------------------------------------

MATRIX = [
    ("permanent", "normal", True),
    ("permanent", "shutdown", True),
    ("permanent", "abnormal", True),
    ("transient", "normal", False),
    ("transient", "shutdown", False),
    ("transient", "abnormal", True),
    ("temporary", "normal", False),
    ("temporary", "shutdown", False),
    ("temporary", "abnormal", False),
]
REASONS: dict[str, ExitReason | None] = {"normal": Normal(), "shutdown": Shutdown(), "abnormal": None}


@pytest.mark.parametrize(
    ("restart", "exit_kind", "restarted"),
    MATRIX,
    ids=[
        f"a {r} child is {'' if x else 'not '}restarted after {'an' if e == 'abnormal' else 'a'} {e} exit"
        for r, e, x in MATRIX
    ],
)
async def test_termination_matrix(
    node: Node, events: EventLog, restart: str, exit_kind: str, restarted: bool
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("c", journal, restart=restart)], intensity=5))
    old = await ref_of(sup, "c")
    await crash(old, REASONS[exit_kind])
    await events.wait_for("child.exited", "root/c")
    if restarted:
        new = await wait_for_restart(sup, "c", old)
        assert journal.tags("init") == ["c", "c"]
        assert (await sup.which_children())[0].restarts == 1
        assert new.alive
        return
    children = await sup.which_children()
    if restart == "temporary":
        assert children == []  # a temporary child's spec is dropped
    else:
        assert [(c.id, c.ref) for c in children] == [("c", None)]
    assert journal.tags("init") == ["c"]
    assert events.of("child.restarted") == []


# -- strategies --------------------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_failed_child(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker(t, journal) for t in "abc"], intensity=5))
    a, b, c = [await ref_of(sup, t) for t in "abc"]
    await crash(b)
    await wait_for_restart(sup, "b", b)
    assert a.alive and c.alive
    assert journal.tags("init") == ["a", "b", "c", "b"]


async def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker(t, journal) for t in "abcd"], strategy="one_for_all", intensity=5)
    sup = await node.start_supervisor(spec)
    b = await ref_of(sup, "b")
    await crash(b)
    await wait_for_restart(sup, "b", b)
    assert journal.tags("terminate") == ["b", "d", "c", "a"]  # b crashed; then the others, reversed
    assert journal.tags("init") == ["a", "b", "c", "d", "a", "b", "c", "d"]
    assert [c.restarts for c in await sup.which_children()] == [1, 1, 1, 1]


async def test_rest_for_one_restarts_the_failed_child_and_those_after_it(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker(t, journal) for t in "abcd"], strategy="rest_for_one", intensity=5)
    sup = await node.start_supervisor(spec)
    a = await ref_of(sup, "a")
    b = await ref_of(sup, "b")
    await crash(b)
    await wait_for_restart(sup, "b", b)
    assert a.alive
    assert journal.tags("terminate") == ["b", "d", "c"]
    assert journal.tags("init") == ["a", "b", "c", "d", "b", "c", "d"]


async def test_one_for_all_drops_temporary_bystanders(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [worker("a", journal), worker("t", journal, restart="temporary"), worker("c", journal)],
        strategy="one_for_all",
        intensity=5,
    )
    sup = await node.start_supervisor(spec)
    a = await ref_of(sup, "a")
    await crash(a)
    await wait_for_restart(sup, "a", a)
    assert [c.id for c in await sup.which_children()] == ["a", "c"]


async def test_a_second_child_failing_during_a_one_for_all_restart_is_retried_via_the_mailbox(
    node: Node,
) -> None:
    journal = Journal()
    state: dict[str, Any] = {}
    spec = SupervisorSpec(
        [worker("a", journal), ChildSpec("b", FailsWhileFlagged, args=(state,)), worker("c", journal)],
        strategy="one_for_all",
        intensity=1000,
    )
    sup = await node.start_supervisor(spec)
    a = await ref_of(sup, "a")
    state["fail"] = True
    await crash(a)
    counts = await sup.count_children()  # answered between two restart attempts
    assert counts.specs == 3 and counts.active < 3
    state["fail"] = False
    await wait_for_child(sup, "c")
    children = await sup.which_children()
    assert all(c.ref is not None and c.ref.alive for c in children)
    assert sup.alive


# -- intensity and escalation ------------------------------------------------------------------------


async def test_exceeding_the_restart_intensity_stops_the_children_and_exits_shutdown(
    node: Node, events: EventLog
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(
        SupervisorSpec([worker("a", journal), worker("b", journal)], intensity=1)
    )
    b = await ref_of(sup, "b")
    await crash(b)
    b2 = await wait_for_restart(sup, "b", b)
    await crash(b2)
    assert await sup.wait() == Shutdown("reached_max_restart_intensity")
    assert journal.tags("terminate")[-1] == "a"
    escalated = await events.wait_for("supervisor.escalated", "root")
    assert escalated.data["child"] == "b"


async def test_restarts_outside_the_period_do_not_count(node: Node, clock: FakeClock) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)], intensity=1, period=5.0))
    ref = await ref_of(sup, "a")
    for _ in range(4):
        await crash(ref)
        ref = await wait_for_restart(sup, "a", ref)
        await clock.jump(5.01)
    assert sup.alive
    assert (await sup.which_children())[0].restarts == 4


async def test_intensity_zero_escalates_on_the_first_failure(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)], intensity=0))
    await crash(await ref_of(sup, "a"))
    assert await sup.wait() == Shutdown("reached_max_restart_intensity")


async def test_a_child_that_always_fails_to_start_escalates_instead_of_hanging(node: Node) -> None:
    state: dict[str, int] = {}
    sup = await node.start_supervisor(
        SupervisorSpec([ChildSpec("f", FailsAfterFirst, args=(state,))], intensity=3)
    )
    (await ref_of(sup, "f")).kill()
    assert await sup.wait() == Shutdown("reached_max_restart_intensity")
    assert state["starts"] == 1 + 3  # the first start, then three failed attempts within the intensity


async def test_a_supervisor_keeps_answering_calls_while_a_restart_keeps_failing(node: Node) -> None:
    state: dict[str, Any] = {"fail": False}
    spec = SupervisorSpec([ChildSpec("f", FailsWhileFlagged, args=(state,))], intensity=10_000)
    sup = await node.start_supervisor(spec)
    state["fail"] = True
    (await ref_of(sup, "f")).kill()
    for _ in range(5):
        info = (await sup.which_children())[0]
        assert info.ref is None and info.restarting
    state["fail"] = False
    await wait_for_child(sup, "f")
    assert sup.alive


# -- nested trees ------------------------------------------------------------------------------------


async def test_an_escalating_nested_supervisor_is_restarted_by_its_parent(node: Node) -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("w", journal)], intensity=0)
    root = await node.start_supervisor(
        SupervisorSpec([ChildSpec("inner", inner), worker("x", journal)], intensity=3)
    )
    inner_ref = await ref_of(root, "inner")
    assert isinstance(inner_ref, SupervisorRef)
    await crash(await ref_of(inner_ref, "w"))
    assert await inner_ref.wait() == Shutdown("reached_max_restart_intensity")
    new_inner = await wait_for_restart(root, "inner", inner_ref)
    assert isinstance(new_inner, SupervisorRef)
    assert (await ref_of(new_inner, "w")).alive
    assert journal.tags("init") == ["w", "x", "w"]
    counts = await root.count_children()
    assert (counts.supervisors, counts.workers, counts.active) == (1, 1, 2)


async def test_stopping_the_root_stops_the_whole_tree_depth_first_in_reverse(node: Node) -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("i1", journal), worker("i2", journal)])
    root = await node.start_supervisor(
        SupervisorSpec([worker("a", journal), ChildSpec("inner", inner), worker("z", journal)])
    )
    await root.stop(Shutdown())
    assert journal.tags("terminate") == ["z", "i2", "i1", "a"]


async def test_killing_a_supervisor_takes_its_children_with_it(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)]))
    a = await ref_of(sup, "a")
    sup.kill()
    assert isinstance(await a.wait(), type(sup.reason))


# -- significant children and auto_shutdown ---------------------------------------------------------


async def test_any_significant_shuts_down_when_a_significant_child_exits_by_itself(
    node: Node, events: EventLog
) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [worker("s", journal, restart="transient", significant=True), worker("other", journal)],
        auto_shutdown="any_significant",
    )
    sup = await node.start_supervisor(spec)
    await crash(await ref_of(sup, "s"), Normal())
    assert await sup.wait() == Shutdown("auto_shutdown")
    assert "other" in journal.tags("terminate")
    await events.wait_for("supervisor.auto_shutdown", "root")


async def test_all_significant_waits_for_the_last_significant_child(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [
            worker("s1", journal, restart="temporary", significant=True),
            worker("s2", journal, restart="temporary", significant=True),
            worker("plain", journal),
        ],
        auto_shutdown="all_significant",
    )
    sup = await node.start_supervisor(spec)
    await crash(await ref_of(sup, "s1"))
    await sup.count_children()
    assert sup.alive
    await crash(await ref_of(sup, "s2"), Shutdown())
    assert await sup.wait() == Shutdown("auto_shutdown")


async def test_a_significant_child_that_crashes_is_restarted_not_shut_down(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [worker("s", journal, restart="transient", significant=True)],
        auto_shutdown="any_significant",
        intensity=3,
    )
    sup = await node.start_supervisor(spec)
    s = await ref_of(sup, "s")
    await crash(s)
    await wait_for_restart(sup, "s", s)
    assert sup.alive


async def test_terminating_a_significant_child_does_not_trigger_auto_shutdown(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [worker("s", journal, restart="transient", significant=True)], auto_shutdown="any_significant"
    )
    sup = await node.start_supervisor(spec)
    await sup.terminate_child("s")
    await sup.count_children()
    assert sup.alive


async def test_a_significant_child_exiting_under_never_is_refused_up_front(node: Node) -> None:
    sup = await node.start_supervisor(SupervisorSpec([]))
    from beamish import SpecError

    with pytest.raises(SpecError, match="significant"):
        await sup.start_child(ChildSpec("s", Worker, restart="transient", significant=True))


# -- backoff ----------------------------------------------------------------------------------------


async def test_backoff_delays_restarts_doubling_and_resets_after_a_quiet_period(
    node: Node, clock: FakeClock, events: EventLog
) -> None:
    journal = Journal()
    backoff = Backoff(min_s=1.0, max_s=4.0, jitter=0.0, reset_after_s=30.0)
    sup = await node.start_supervisor(SupervisorSpec([worker("b", journal, backoff=backoff)], intensity=100))
    ref = await ref_of(sup, "b")
    for expected in (1.0, 2.0, 4.0, 4.0):
        await crash(ref)
        delayed = await events.wait_for(
            "child.restart_delayed", "root/b", count=len(events.of("child.restart_delayed")) + 1
        )
        assert delayed.data["delay_s"] == expected
        info = (await sup.which_children())[0]
        assert info.ref is None and info.restarting
        await clock.jump(expected - 0.01)
        assert (await sup.which_children())[0].ref is None
        await clock.jump(0.01)
        ref = await wait_for_restart(sup, "b", ref)
    await clock.jump(30.0)
    await crash(ref)
    delayed = await events.wait_for("child.restart_delayed", "root/b", count=5)
    assert delayed.data["delay_s"] == 1.0


async def test_a_child_waiting_on_its_backoff_can_be_terminated_and_restarted_by_hand(
    node: Node, clock: FakeClock
) -> None:
    from beamish.errors import Restarting

    journal = Journal()
    backoff = Backoff(min_s=10.0, max_s=10.0, jitter=0.0)
    sup = await node.start_supervisor(SupervisorSpec([worker("b", journal, backoff=backoff)], intensity=5))
    await crash(await ref_of(sup, "b"))
    await settle()
    with pytest.raises(Restarting):
        await sup.restart_child("b")
    await sup.terminate_child("b")  # cancels the pending restart
    await clock.jump(10.0)
    assert (await sup.which_children())[0].ref is None
    assert await sup.restart_child("b") is not None


# -- scale ------------------------------------------------------------------------------------------


async def test_many_children_start_restart_and_stop_in_order(node: Node) -> None:
    journal = Journal()
    n = 500
    sup = await node.start_supervisor(
        SupervisorSpec([worker(f"w{i}", journal) for i in range(n)], intensity=n)
    )
    victims = [await ref_of(sup, f"w{i}") for i in range(0, n, 50)]
    for victim in victims:
        victim.kill()
    for i, victim in zip(range(0, n, 50), victims, strict=True):
        await wait_for_restart(sup, f"w{i}", victim)
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (n, n, n)
    await sup.stop(Shutdown())
    assert journal.tags("terminate") == [f"w{i}" for i in reversed(range(n))]


async def test_count_children_during_a_delayed_restart(node: Node) -> None:
    journal = Journal()
    backoff = Backoff(min_s=5.0, max_s=5.0, jitter=0.0)
    sup = await node.start_supervisor(
        SupervisorSpec([worker("a", journal), worker("b", journal, backoff=backoff)], intensity=5)
    )
    await crash(await ref_of(sup, "b"))
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (2, 1, 2)


async def test_a_crash_reason_reaches_the_exited_event_with_its_traceback(
    node: Node, events: EventLog
) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)], intensity=5))
    await crash(await ref_of(sup, "a"))
    exited = await events.wait_for("child.exited", "root/a")
    assert exited.data["reason"]["kind"] == "crashed"
    assert "RuntimeError: boom" in exited.data["reason"]["traceback"]
    assert Crashed(RuntimeError("boom")).message == exited.data["reason"]["error"]


async def test_an_exit_from_an_unknown_linked_actor_is_ignored(node: Node) -> None:
    journal = Journal()
    sup = await node.start_supervisor(SupervisorSpec([worker("a", journal)]))
    stranger = await node.spawn(Worker, "stranger")
    node.link(sup, stranger)
    stranger.kill()
    await asyncio.sleep(0)
    assert (await sup.count_children()).active == 1


async def test_rest_for_one_does_not_restart_an_earlier_child_again_when_a_later_one_fails_to_start(
    node: Node,
) -> None:
    journal = Journal()
    state: dict[str, Any] = {}
    spec = SupervisorSpec(
        [worker("a", journal), ChildSpec("b", FailsWhileFlagged, args=(state, "b"))],
        strategy="rest_for_one",
        intensity=1000,
    )
    sup = await node.start_supervisor(spec)
    a = await ref_of(sup, "a")
    state["fail"] = True
    await crash(a)
    new_a = await wait_for_restart(sup, "a", a)
    await sup.count_children()
    state["fail"] = False
    await wait_for_child(sup, "b")
    assert await ref_of(sup, "a") is new_a
    assert journal.tags("init") == ["a", "a"]


async def test_a_restart_counts_against_intensity_even_when_it_fails_to_start(node: Node) -> None:
    state: dict[str, Any] = {"fail": False}
    sup = await node.start_supervisor(
        SupervisorSpec([ChildSpec("f", FailsWhileFlagged, args=(state,))], intensity=2, period=60.0)
    )
    state["fail"] = True
    (await ref_of(sup, "f")).kill()
    assert await sup.wait() == Shutdown("reached_max_restart_intensity")
    assert state["starts"] == 1 + 2


async def test_auto_shutdown_of_a_significant_nested_supervisor_cascades_to_its_parent(node: Node) -> None:
    journal = Journal()
    inner = SupervisorSpec(
        [worker("job", journal, restart="transient", significant=True)], auto_shutdown="any_significant"
    )
    root = await node.start_supervisor(
        SupervisorSpec(
            [ChildSpec("batch", inner, restart="transient", significant=True), worker("other", journal)],
            auto_shutdown="any_significant",
        )
    )
    batch = await ref_of(root, "batch")
    assert isinstance(batch, SupervisorRef)
    await crash(await ref_of(batch, "job"), Normal())
    assert await batch.wait() == Shutdown("auto_shutdown")
    assert await root.wait() == Shutdown("auto_shutdown")
    assert journal.tags("terminate") == ["job", "other"]


@pytest.mark.parametrize(
    "strategy",
    ["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"],
    ids=lambda s: f"a {s} supervisor escalates when its restart intensity is exceeded",
)
async def test_escalation_for_each_strategy(node: Node, strategy: str, events: EventLog) -> None:
    journal = Journal()
    if strategy == "simple_one_for_one":
        spec = SupervisorSpec([worker("w", journal)], strategy="simple_one_for_one", intensity=2)
        sup = await node.start_supervisor(spec)
        ref = await sup.start_child([])
        assert ref is not None
        others = [await sup.start_child([]) for _ in range(2)]
    else:
        spec = SupervisorSpec([worker(t, journal) for t in "abc"], strategy=strategy, intensity=2)  # type: ignore[arg-type]
        sup = await node.start_supervisor(spec)
        ref = await ref_of(sup, "a")
        others = [await ref_of(sup, "b"), await ref_of(sup, "c")]
    for attempt in range(3):
        ref.kill()
        if attempt < 2:
            infos = await sup.which_children()
            ref = infos[0].ref  # type: ignore[assignment]
            assert ref is not None
    assert await sup.wait() == Shutdown("reached_max_restart_intensity")
    assert all(o is not None and not o.alive for o in others)
    assert (await events.wait_for("supervisor.escalated", "root")).data["intensity"] == 2


SIGNIFICANT = [
    ("any_significant", "transient", "normal", True),
    ("any_significant", "transient", "abnormal", False),
    ("any_significant", "temporary", "abnormal", True),
    ("any_significant", "temporary", "shutdown", True),
    ("all_significant", "transient", "normal", True),
    ("all_significant", "temporary", "abnormal", True),
]


@pytest.mark.parametrize(
    ("mode", "restart", "exit_kind", "shuts_down"),
    SIGNIFICANT,
    ids=[
        f"with {m} a significant {r} child exiting {e} {'shuts the supervisor down' if x else 'is restarted'}"
        for m, r, e, x in SIGNIFICANT
    ],
)
async def test_significant_matrix(
    node: Node, mode: str, restart: str, exit_kind: str, shuts_down: bool
) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        [worker("s", journal, restart=restart, significant=True)],
        auto_shutdown=mode,  # type: ignore[arg-type]
        intensity=5,
    )
    sup = await node.start_supervisor(spec)
    s = await ref_of(sup, "s")
    await crash(s, REASONS[exit_kind])
    if shuts_down:
        assert await sup.wait() == Shutdown("auto_shutdown")
    else:
        await wait_for_restart(sup, "s", s)
        assert sup.alive


async def test_a_thousand_simple_one_for_one_temporary_children_are_counted_and_terminated(
    node: Node,
) -> None:
    journal = Journal()
    spec = SupervisorSpec([worker("w", journal, restart="temporary")], strategy="simple_one_for_one")
    sup = await node.start_supervisor(spec)
    refs = [await sup.start_child([]) for _ in range(1000)]
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (1, 1000, 0, 1000)
    assert len(await sup.which_children()) == 1000
    for ref in refs:
        await sup.terminate_child(ref)
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.workers) == (1, 0, 0)
