"""Both servers, driven by the official MCP client over stdio, answer every call identically.

Random operation sequences (hypothesis) run against the reference from npm and against beamish on
two files; every result (text, structured content, error flag) and the final file bytes must be
equal. Sessions are started once and reused; the files are reset between examples. Beamish
appends created entities and compacts the file to the reference's layout once idle; here it is
told to compact as soon as it is idle, so the file at rest is compared after every sequence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamish

from .conftest import beamish_command, mcp_session, reference_command

pytestmark = pytest.mark.timeout(150)

NAMES = ["a", "b", "Ab", "é", "İx"]
WORDS = ["x", "y", "X", "ß", "a b", ""]
TYPES = ["person", "Org", "p"]


class Pair:
    """Two live sessions (reference, beamish) on their own files, driven from a blocking portal."""

    def __init__(self, portal: BlockingPortal, directory: Path, reference_js: Path) -> None:
        self.portal = portal
        self.files = {"reference": directory / "reference.jsonl", "beamish": directory / "beamish.jsonl"}
        self.sessions: dict[str, Any] = {}
        self.notifications: dict[str, list[str]] = {"reference": [], "beamish": []}
        self._stack = ExitStack()
        for name, command in (("reference", reference_command(reference_js)), ("beamish", beamish_command())):
            env = {"BEAMISH_MEMORY_COMPACT_IDLE_S": "0"} if name == "beamish" else None
            cm = portal.wrap_async_context_manager(
                mcp_session(command, self.files[name], self.notifications[name], env)
            )
            self.sessions[name] = self._stack.enter_context(cm)

    def close(self) -> None:
        self._stack.close()

    def reset(self) -> None:
        for path in self.files.values():
            path.unlink(missing_ok=True)

    def call(self, tool: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        out = {}
        for name, session in self.sessions.items():
            result = self.portal.call(session.call_tool, tool, arguments)
            out[name] = {
                "content": [c.model_dump(mode="json", exclude_none=True) for c in result.content],
                "structured": result.structured_content,
                "isError": bool(result.is_error),
            }
        return out

    def request(self, method: str, **kwargs: Any) -> dict[str, Any]:
        out = {}
        for name, session in self.sessions.items():
            result = self.portal.call(lambda s=session: getattr(s, method)(**kwargs))
            out[name] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return out


@pytest.fixture(scope="module")
def pair(reference_js: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with start_blocking_portal() as portal:
        both = Pair(portal, tmp_path_factory.mktemp("conformance"), reference_js)
        try:
            yield both
        finally:
            both.close()


entity = st.fixed_dictionaries(
    {
        "name": st.sampled_from(NAMES),
        "entityType": st.sampled_from(TYPES),
        "observations": st.lists(st.sampled_from(WORDS), max_size=3),
    }
)
relation = st.fixed_dictionaries(
    {
        "from": st.sampled_from(NAMES),
        "to": st.sampled_from(NAMES),
        "relationType": st.sampled_from(["knows", "Owns"]),
    }
)
bad_value = st.sampled_from([None, 3, "s", True, [], {}, [1], [{}]])

operations = st.one_of(
    st.tuples(st.just("create_entities"), st.fixed_dictionaries({"entities": st.lists(entity, max_size=3)})),
    st.tuples(
        st.just("create_relations"), st.fixed_dictionaries({"relations": st.lists(relation, max_size=3)})
    ),
    st.tuples(
        st.just("add_observations"),
        st.fixed_dictionaries(
            {
                "observations": st.lists(
                    st.fixed_dictionaries(
                        {
                            "entityName": st.sampled_from(NAMES),
                            "contents": st.lists(st.sampled_from(WORDS), max_size=3),
                        }
                    ),
                    max_size=2,
                )
            }
        ),
    ),
    st.tuples(
        st.just("delete_entities"),
        st.fixed_dictionaries({"entityNames": st.lists(st.sampled_from(NAMES), max_size=2)}),
    ),
    st.tuples(
        st.just("delete_observations"),
        st.fixed_dictionaries(
            {
                "deletions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "entityName": st.sampled_from(NAMES),
                            "observations": st.lists(st.sampled_from(WORDS), max_size=2),
                        }
                    ),
                    max_size=2,
                )
            }
        ),
    ),
    st.tuples(
        st.just("delete_relations"), st.fixed_dictionaries({"relations": st.lists(relation, max_size=2)})
    ),
    st.tuples(st.just("read_graph"), st.just({})),
    st.tuples(
        st.just("search_nodes"),
        st.fixed_dictionaries({"query": st.sampled_from([*NAMES, *WORDS, "I", "PERSON"])}),
    ),
    st.tuples(
        st.just("open_nodes"),
        st.fixed_dictionaries({"names": st.lists(st.sampled_from([*NAMES, "zz"]), max_size=3)}),
    ),
    st.tuples(
        st.sampled_from(
            ["create_entities", "create_relations", "add_observations", "open_nodes", "search_nodes"]
        ),
        st.dictionaries(
            st.sampled_from(["entities", "relations", "observations", "names", "query"]),
            bad_value,
            max_size=2,
        ),
    ),
)


@settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(operations, min_size=1, max_size=12))
def test_random_operation_sequences_give_the_reference_results_and_file(
    pair: Pair, ops: list[tuple[str, Any]]
) -> None:
    pair.reset()
    for tool, arguments in ops:
        got = pair.call(tool, arguments)
        assert got["beamish"] == got["reference"], (tool, arguments)
    final = pair.call("read_graph", {})
    assert final["beamish"] == final["reference"]
    files = {name: path.read_bytes() if path.exists() else None for name, path in pair.files.items()}
    assert files["beamish"] == files["reference"]


def test_tools_list_matches_the_reference_field_by_field(pair: Pair) -> None:
    got = pair.request("list_tools")
    reference, ours = got["reference"]["tools"], got["beamish"]["tools"]
    assert [t["name"] for t in ours] == [t["name"] for t in reference]
    for mine, theirs in zip(ours, reference, strict=True):
        assert set(mine) == set(theirs), mine["name"]
        for field in theirs:
            assert mine[field] == theirs[field], (mine["name"], field)
        assert json.dumps(mine["inputSchema"]) == json.dumps(theirs["inputSchema"]), "key order differs"


def test_resources_and_server_identity_match_the_reference(pair: Pair) -> None:
    resources = pair.request("list_resources")
    assert resources["beamish"]["resources"] == resources["reference"]["resources"]
    pair.reset()
    pair.call("create_entities", {"entities": [{"name": "r", "entityType": "t", "observations": ["o"]}]})
    read = pair.request("read_resource", uri="memory://knowledge-graph")
    assert read["beamish"]["contents"] == read["reference"]["contents"]
    info = {name: s.initialize_result for name, s in pair.sessions.items()}
    # The identity is our own (a drop-in names itself honestly); the protocol and capabilities match.
    assert info["beamish"].server_info.name == "beamish-memory"
    assert info["beamish"].server_info.version == beamish.__version__
    assert info["reference"].server_info.name != "beamish-memory"
    assert info["beamish"].protocol_version == info["reference"].protocol_version
    assert info["beamish"].capabilities.tools == info["reference"].capabilities.tools
    assert info["beamish"].capabilities.resources == info["reference"].capabilities.resources


def test_tool_errors_match_the_reference(pair: Pair) -> None:
    pair.reset()
    cases: list[tuple[str, Any]] = [
        ("nosuch", {}),
        ("create_entities", {}),
        ("create_entities", {"entities": [{"name": 1, "entityType": None}, 5, []]}),
        ("add_observations", {"observations": [{"entityName": "missing", "contents": ["x"]}]}),
        ("open_nodes", {"names": [1, "a", None, [], {}, True]}),
        ("search_nodes", {"query": 7}),
        ("delete_relations", {"relations": [{"from": "a"}]}),
        ("read_graph", {"ignored": 1}),
        (
            "create_entities",
            {"entities": [{"name": "big", "entityType": "t", "observations": ["x" * 1_000_000]}]},
        ),
        ("search_nodes", {"query": "x" * 100_000}),
    ]
    for tool, arguments in cases:
        got = pair.call(tool, arguments)
        assert got["beamish"] == got["reference"], tool
    assert pair.files["beamish"].read_bytes() == pair.files["reference"].read_bytes()


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")  # the reference's (2025) way
def test_subscribers_hear_of_every_change_as_from_the_reference(pair: Pair) -> None:
    pair.reset()
    for name, session in pair.sessions.items():
        pair.portal.call(session.subscribe_resource, "memory://knowledge-graph")
        pair.notifications[name].clear()
    pair.call("create_entities", {"entities": [{"name": "n", "entityType": "t", "observations": []}]})
    pair.call("add_observations", {"observations": [{"entityName": "missing", "contents": ["x"]}]})  # fails
    pair.call("delete_entities", {"entityNames": ["nobody"]})  # changes nothing, still notifies
    pair.call("read_graph", {})
    for session in pair.sessions.values():
        pair.portal.call(session.unsubscribe_resource, "memory://knowledge-graph")
    pair.call("delete_entities", {"entityNames": ["n"]})
    pair.request("send_ping")  # anything sent before the ping's answer has been handled
    assert pair.notifications["beamish"] == pair.notifications["reference"]
    assert pair.notifications["beamish"] == ["notifications/resources/updated"] * 2
