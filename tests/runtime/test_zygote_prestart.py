"""A zygote started before the node (as ``beamish run`` does, to overlap its imports with the command
line's) is adopted by the first node, and its children see what the node set up after it started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from beamish import ChildSpec, Node, SupervisorSpec
from beamish.runtime import _zygote_client
from beamish.runtime._process import zygote_of
from beamish.runtime._zygote_client import discard_prestarted, prestart

from .test_process_support import Echo

pytestmark = pytest.mark.timeout(60)  # bounds only: a busy machine may slow a zygote start


@pytest.fixture(autouse=True)
def no_prestart_left() -> Iterator[None]:
    yield
    discard_prestarted()


async def test_the_first_node_adopts_the_prestarted_zygote_with_the_path_and_environment_set_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prestart(("json.tool",))
    ((proc, *_),) = _zygote_client._PRESTARTED
    # what a company sets up after the prestart: the memory server's URL, the folder of its tools
    monkeypatch.setenv("BEAMISH_TEST_LATE", "set after the prestart")
    (tmp_path / "late_tools.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    async with Node() as node:
        node.preload("late_tools")
        sup = await node.start_supervisor(SupervisorSpec([ChildSpec("a", Echo, isolation="process")]))
        (info,) = await sup.which_children()
        assert info.ref is not None
        client = zygote_of(node)
        assert client is not None and client.pid == proc.pid
        assert _zygote_client._PRESTARTED == []
        assert await info.ref.call({"env": "BEAMISH_TEST_LATE"}) == "set after the prestart"
        assert await info.ref.call({"module_loaded": "late_tools"}) is True
        assert await info.ref.call({"module_loaded": "json.tool"}) is True


def test_a_prestarted_zygote_no_node_adopts_is_stopped_when_discarded() -> None:
    prestart()
    ((proc, *_),) = _zygote_client._PRESTARTED
    discard_prestarted()
    assert proc.poll() is not None
    assert _zygote_client._PRESTARTED == []
