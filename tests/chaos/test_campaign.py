"""The fault campaign, CI-sized: about 5,000 events through the whole pipeline while every
fault strikes twice, and not one dossier lost, applied twice, overwritten by an older
version, invented, or dead-lettered. The broker is running and alarm-free after, whatever
happened."""

from __future__ import annotations

import subprocess
from argparse import Namespace

import pytest

from bench import chaos
from bench.chaos.schedule import FAULTS
from bench.faults import HUGE_DISK_LIMIT
from broker import BrokerControl


@pytest.fixture
def campaign_env(amqp_url: str, management_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The campaign finds the tests' broker where a person's run finds theirs: the environment."""
    monkeypatch.setenv("BUS_AMQP_URL", amqp_url)
    monkeypatch.setenv("BUS_MANAGEMENT_URL", management_url)


def test_five_thousand_events_under_every_fault_twice_lose_nothing_and_apply_nothing_wrongly(
    campaign_env: None, broker_control: BrokerControl
) -> None:
    options = Namespace(events=5000, faults=",".join(FAULTS), rounds=2, seed=7, minutes=None,
                        settle_timeout=150.0, keep=False)  # fmt: skip
    try:
        result = chaos.run(options)
    finally:
        limit = broker_control.run("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        assert limit != HUGE_DISK_LIMIT, "the disk alarm was cleared"
    assert result["faults"] == dict.fromkeys(FAULTS, 2), result["schedule"]
    assert result["settled"]["ok"], result["settled"]
    counts = {name: result[name] for name in ("lost", "duplicate_applied", "stale_applied",
                                             "unexpected", "dead_lettered_valid")}  # fmt: skip
    assert counts == dict.fromkeys(counts, 0), result["examples"]
    assert result["events"] >= 4500


def test_the_broker_is_restored_from_a_stopped_app_and_a_raised_disk_alarm(
    campaign_env: None, broker_control: BrokerControl, amqp_url: str, management_url: str
) -> None:
    from bench.faults import BrokerFaults

    faults = BrokerFaults(management_url, amqp_url)
    try:
        faults.raise_disk_alarm()
        faults.stop_app()
        faults.restore()
        assert faults.running()
        limit = broker_control.run("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        assert limit == faults.disk_limit
    finally:
        subprocess.run(["rabbitmqctl", "set_disk_free_limit", faults.disk_limit], check=False)
