"""The fault campaign, CI-sized: about 5,000 events through the whole pipeline while every
fault strikes twice, and not one dossier lost, applied twice, overwritten by an older
version, invented, or dead-lettered. The broker is running and alarm-free after, whatever
happened."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest

from bench import chaos
from bench.chaos.schedule import FAULTS
from bench.faults import HUGE_DISK_LIMIT
from broker import BrokerControl
from bus.management import Management


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


def test_a_campaign_stopped_with_sigterm_leaves_no_process_virtual_host_or_alarm_behind(
    campaign_env: None, broker_control: BrokerControl, management_url: str
) -> None:
    command = [sys.executable, "-m", "bench", "chaos", "--events", "1000", "--faults",
               "disk_alarm,connections_closed", "--rounds", "1"]  # fmt: skip
    vhosts_before = _vhosts(management_url)
    campaign = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        children = _children_once_running(campaign, count=4)
        campaign.send_signal(signal.SIGTERM)
        _, stderr = campaign.communicate(timeout=90)
    finally:
        if campaign.poll() is None:
            campaign.kill()
    assert campaign.returncode != 0, "stopped, not finished"
    assert b"KeyboardInterrupt" in stderr
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert _vhosts(management_url) == vhosts_before
    limit = broker_control.run("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
    assert limit != HUGE_DISK_LIMIT


def _children_once_running(process: subprocess.Popen[bytes], count: int) -> list[int]:
    """The pids of `process`'s children, once it has `count` of them (its pipeline's)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        children = [
            int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent(stat) == process.pid
        ]  # fmt: skip
        if len(children) >= count:
            return children
        time.sleep(0.2)
    raise AssertionError(f"the campaign did not start its {count} processes in 120 s")


def _parent(stat: Path) -> int | None:
    try:  # the command may hold spaces and parentheses: the fields after its last ")"
        return int(stat.read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _vhosts(management_url: str) -> set[str]:
    with Management(management_url) as api:
        return {vhost["name"] for vhost in api.call("GET", "/api/vhosts")}
