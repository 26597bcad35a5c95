"""A soak judges RSS growth from the end of its warm-up: once the bounded caches are full."""

from __future__ import annotations

import pytest

from bench.chaos import RSS_EVERY, _soak, _warm_up


def test_the_warm_up_lasts_half_again_as_long_as_the_sync_cache_takes_to_fill() -> None:
    # 100,000 dossiers opened evenly over 30 minutes: the 20,000-dossier cache is full at 6.
    assert _warm_up(30, 100_000) == pytest.approx(9.0)


def test_the_warm_up_is_at_least_a_sixth_of_the_soak_and_at_most_half() -> None:
    assert _warm_up(30, 10_000_000) == pytest.approx(5.0)
    assert _warm_up(30, 1_000) == pytest.approx(15.0)


def test_growth_is_measured_from_the_reading_at_the_end_of_the_warm_up() -> None:
    readings = [{"sync": (7, mb * 2**20)} for mb in (50, 90, 100, 100, 104)]
    end = readings[-1]
    soak = _soak(2.5, 1.5 * RSS_EVERY / 60, 1000.0, readings, readings[0], end, end)
    assert soak["rss_mb"]["sync"] == {"start": 50.0, "warm": 100.0, "end": 104.0,
                                      "settled": 104.0, "growth_after_warm_up_pct": 4.0,
                                      "same_process": True}  # fmt: skip
