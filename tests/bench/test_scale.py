"""The scale benchmark at a size CI can afford: each worker count drains the same events
from the shards, and the portal ends up holding the same dossiers whatever the count."""

from __future__ import annotations

from argparse import Namespace

import pytest

from bench import scale


@pytest.mark.usefixtures("rabbitmq")
def test_one_and_two_workers_drain_the_same_events_from_four_shards() -> None:
    result = scale.run(Namespace(workers="1,2", shards=4, events=1200, dossiers=200))

    assert [run["workers"] for run in result["runs"]] == [1, 2]
    assert result["events"] == 1200
    assert sum(result["shard_depths"]) == 1200
    assert all(depth > 0 for depth in result["shard_depths"])  # the hash spreads dossiers
    first, second = result["runs"]
    assert first["portal_dossiers"] == second["portal_dossiers"] == 200
    assert first["portal_digest"] == second["portal_digest"]
    assert all(run["bus_eps"] > 0 and run["ratio"] > 0 for run in result["runs"])
