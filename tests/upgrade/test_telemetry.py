"""Upgrades and rollbacks are counted in telemetry, by outcome."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from beamish._events import Event
from beamish.telemetry import Telemetry

pytestmark = pytest.mark.timeout(20)


def test_upgrades_and_rollbacks_become_a_metric_by_outcome() -> None:
    reader = InMemoryMetricReader()
    tel = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    tel.on_event(Event("agent.upgraded", "lawyer", {"version": 2}))
    tel.on_event(Event("agent.upgraded", "cfo", {"version": 3}))
    tel.on_event(Event("agent.rolled_back", "cfo", {"from": 3, "to": 2}))
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "beamish.agent.upgrades"
        for p in m.data.data_points
    ]
    by_outcome: dict[str, int] = {}
    for p in points:
        outcome = str(p.attributes["beamish.upgrade.outcome"])
        by_outcome[outcome] = by_outcome.get(outcome, 0) + int(p.value)
    assert by_outcome == {"upgraded": 2, "rolled_back": 1}
