"""The server-side pictures stay small and readable whatever the data: a day of ledger entries draws
in a bounded number of points, many children stack as a few groups and "other", text is escaped."""

from __future__ import annotations

import pytest

from beamish.dashboard import _svg as svg

pytestmark = pytest.mark.timeout(10)


def test_a_long_ledger_draws_in_a_bounded_number_of_points() -> None:
    line = [(1000.0 + i, 0.001 * (i + 1)) for i in range(20_000)]
    drawn = svg.spend_lines("spend", {"a": line}, {"cap": 30.0}, start=0.0, end=100_000.0, testid="c")
    points = drawn.split('points="', 1)[1].split('"', 1)[0].split()
    assert len(points) <= 2 * (svg.W - svg.LEFT - svg.RIGHT + 2) + 2
    assert "a $20.00" in drawn and 'data-cap="cap"' in drawn


def test_many_groups_stack_as_the_most_frequent_and_other() -> None:
    items = [(1000.0 + i, f"child-{i % 40}") for i in range(400)] + [(1000.0, "child-0")] * 50
    drawn, size = svg.stacked_bars("restarts", items, testid="r")
    groups = {part.split('"', 1)[0] for part in drawn.split('data-group="')[1:]}
    assert len(groups) == svg.MAX_GROUPS and "other" in groups and "child-0" in groups
    assert size == 10  # 400 s of data: 10 s bars


def test_names_in_a_picture_are_escaped() -> None:
    drawn, _ = svg.stacked_bars("x", [(1.0, "<b>&")], testid="x")
    assert "<b>&" not in drawn and "&lt;b&gt;&amp;" in drawn


def test_no_data_says_so_instead_of_an_empty_frame() -> None:
    assert "no spend recorded" in svg.spend_lines("s", {}, {}, start=0.0, end=10.0, testid="s")
    assert "nothing here" in svg.stacked_bars("r", [], testid="r", nothing="nothing here")[0]


def test_a_count_axis_has_whole_ticks_and_a_dollar_axis_says_its_cents() -> None:
    drawn, _ = svg.stacked_bars("runs", [(1000.0, "succeeded")] * 5, testid="r")
    ticks = [part.split("<", 1)[0] for part in drawn.split('class="tick">')[1:5]]
    assert ticks == ["0", "2", "4", "6"]  # not 1.25, 2.5, 3.75
    line = svg.spend_lines("s", {"a": [(10.0, 0.046)]}, {}, start=0.0, end=20.0, testid="s")
    assert "$0.0125" in line and "$0.013" not in line.replace("$0.0125", "")
    assert "a $0.046<" in line  # the legend writes dollars as the tables do


def test_a_long_legend_label_is_cut_to_fit_and_whole_on_hover() -> None:
    drawn, _ = svg.stacked_bars(
        "runs", [(1.0, "awaiting_approval")] * 2, testid="r", colours=svg.OUTCOME_COLOURS
    )
    assert "<title>awaiting_approval (2)</title>awaiting_approv…" in drawn
    assert 'fill="#c1579a" data-group="awaiting_approval"' in drawn  # its own colour, not running's
