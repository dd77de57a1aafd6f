"""Spec validation (supervisor_SUITE: child_specs, sup_flags): every bad key is named with its value."""

from __future__ import annotations

from typing import Any

import pytest

from beamish import Backoff, ChildSpec, Node, SpecError, SupervisorSpec

from ._actors import Worker

pytestmark = pytest.mark.timeout(10)


class NotAnActor:
    pass


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"start": NotAnActor}, "start", "NotAnActor"),
        ({"start": "Worker"}, "start", "'Worker'"),
        ({"restart": "sometimes"}, "restart", "'sometimes'"),
        ({"shutdown": -1}, "shutdown", "-1"),
        ({"shutdown": 0}, "shutdown", "0"),
        ({"shutdown": "soon"}, "shutdown", "'soon'"),
        ({"significant": "yes", "restart": "transient"}, "significant", "'yes'"),
        ({"significant": True}, "significant", "True"),
        ({"isolation": "thread"}, "isolation", "'thread'"),
        ({"args": "abc"}, "args", "'abc'"),
        ({"kwargs": [1]}, "kwargs", "[1]"),
        ({"backoff": 3}, "backoff", "3"),
        ({"max_memory_mb": 100}, "max_memory_mb", "100"),
        ({"max_memory_mb": -5, "isolation": "process"}, "max_memory_mb", "-5"),
        ({"hang_after_s": 0, "isolation": "process"}, "hang_after_s", "0"),
    ],
    ids=lambda v: str(v),
)
def test_a_bad_child_spec_value_is_refused_naming_the_key_and_value(
    fields: dict[str, Any], key: str, value: str
) -> None:
    spec = {"id": "child", "start": Worker, **fields}
    with pytest.raises(SpecError) as info:
        ChildSpec(**spec)
    message = str(info.value)
    assert f"{key}=" in message and value in message
    assert "'child'" in message


def test_an_unhashable_child_id_is_refused() -> None:
    with pytest.raises(SpecError, match=r"id=\[1\]"):
        ChildSpec([1], Worker)


def test_child_spec_defaults_follow_otp() -> None:
    worker = ChildSpec("w", Worker)
    assert (worker.restart, worker.shutdown, worker.significant, worker.isolation) == (
        "permanent",
        5.0,
        False,
        "task",
    )
    nested = ChildSpec("s", SupervisorSpec([]))
    assert nested.shutdown == "infinity"
    assert nested.child_type == "supervisor"


def test_a_process_child_accepts_memory_and_hang_limits() -> None:
    spec = ChildSpec("p", Worker, isolation="process", max_memory_mb=256, hang_after_s=30)
    assert (spec.max_memory_mb, spec.hang_after_s) == (256, 30)


def test_a_nested_supervisor_cannot_be_process_isolated() -> None:
    with pytest.raises(SpecError, match="isolation='process'"):
        ChildSpec("s", SupervisorSpec([]), isolation="process")


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"strategy": "one_for_some"}, "strategy", "'one_for_some'"),
        ({"intensity": -1}, "intensity", "-1"),
        ({"intensity": 1.5}, "intensity", "1.5"),
        ({"period": 0}, "period", "0"),
        ({"auto_shutdown": "sometimes"}, "auto_shutdown", "'sometimes'"),
        ({"children": ChildSpec("a", Worker)}, "children", "ChildSpec"),
    ],
    ids=lambda v: str(v),
)
def test_a_bad_supervisor_flag_is_refused_naming_the_key_and_value(
    fields: dict[str, Any], key: str, value: str
) -> None:
    with pytest.raises(SpecError) as info:
        SupervisorSpec(**fields)
    assert f"{key}={value}" in str(info.value)


def test_a_duplicate_child_id_is_refused() -> None:
    with pytest.raises(SpecError, match=r"'a'.*twice"):
        SupervisorSpec([ChildSpec("a", Worker), ChildSpec("b", Worker), ChildSpec("a", Worker)])


def test_significant_children_need_an_auto_shutdown() -> None:
    child = ChildSpec("s", Worker, restart="transient", significant=True)
    with pytest.raises(SpecError, match="auto_shutdown"):
        SupervisorSpec([child])
    assert SupervisorSpec([child], auto_shutdown="any_significant").children == (child,)


def test_simple_one_for_one_needs_exactly_one_template() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        SupervisorSpec([], strategy="simple_one_for_one")
    with pytest.raises(SpecError, match="exactly one"):
        SupervisorSpec([ChildSpec("a", Worker), ChildSpec("b", Worker)], strategy="simple_one_for_one")


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"min_s": -1}, "min_s"),
        ({"min_s": 2, "max_s": 1}, "max_s"),
        ({"jitter": 1.5}, "jitter"),
        ({"reset_after_s": 0}, "reset_after_s"),
    ],
    ids=lambda v: str(v),
)
def test_a_bad_backoff_is_refused_naming_the_key(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError, match=f"{key}="):
        Backoff(**fields)


def test_backoff_doubles_up_to_its_maximum_and_jitters_within_bounds() -> None:
    backoff = Backoff(min_s=1.0, max_s=5.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittery = Backoff(min_s=1.0, max_s=5.0, jitter=0.5)
    assert jittery.delay(1, rand=0.0) == 0.5
    assert jittery.delay(1, rand=0.999) == pytest.approx(1.499, abs=1e-3)


async def test_start_supervisor_refuses_what_is_not_a_supervisor_spec(node: Node) -> None:
    with pytest.raises(SpecError, match="SupervisorSpec"):
        await node.start_supervisor([ChildSpec("a", Worker)])  # type: ignore[arg-type]
