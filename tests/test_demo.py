"""`bus demo`, as a newcomer runs it: the whole pipeline, bounded, ending with a summary.

Run as a child process, exactly as `make demo` runs it, so that its exit code and its output
are what is checked, and its signal handlers and event loop are its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pika

from broker import Broker

DOSSIERS = 15


def test_demo_syncs_three_local_systems_to_the_portal_and_exits_by_itself(
    rabbitmq: Broker,
) -> None:
    env = {
        **os.environ,
        "BUS_AMQP_URL": rabbitmq.amqp_url,
        "BUS_MANAGEMENT_URL": rabbitmq.management_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bus", "demo", "--dossiers", str(DOSSIERS), "--timeout", "45"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for unit in ("H29", "G01", "H31"):
        line = rf"(?m)^  {unit} .* {DOSSIERS}/{DOSSIERS} synced "
        assert re.search(line, result.stdout), f"{unit} not reported synced:\n{output}"
    assert "Where to look next" in result.stdout


def test_the_operator_commands_the_demo_prints_show_its_queues_units_and_dead_letters(
    rabbitmq: Broker,
) -> None:
    env = {
        **os.environ,
        "BUS_AMQP_URL": rabbitmq.amqp_url,
        "BUS_MANAGEMENT_URL": rabbitmq.management_url,
    }
    demo = subprocess.Popen(
        [sys.executable, "-m", "bus", "demo", "--dossiers", "5", "--timeout", "45",
         "--keep-running"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        printed = _until(demo, "Everything keeps running")
        where = re.search(r"BUS_AMQP_URL='([^']+)' BUS_OPS_URL='([^']+)'", printed)
        assert where, printed
        amqp_url, ops_url = where.groups()
        _publish_unsigned(amqp_url)
        operator_env = {**env, "BUS_AMQP_URL": amqp_url, "BUS_OPS_URL": ops_url}

        status = _bus(operator_env, "status")
        assert re.search(r"(?m)^portal\.sync +quorum ", status), status
        assert re.search(r"(?m)^H29 +1 +signature=1 +h29-igate +\d+s ", status), status
        assert re.search(r"(?m)^G01 +0 +- +g01-dvc +\d+s ", status), status

        listed = _bus(operator_env, "dlq", "list")
        assert re.search(r"(?m)^id +unit +reason ", listed), listed
        assert re.search(r"(?m)^unsigned-1 +H29 +signature +status_changed ", listed), listed
    finally:
        demo.send_signal(signal.SIGINT)
        rest = demo.communicate(timeout=60)[0]
    assert demo.returncode == 0, rest


def _until(process: subprocess.Popen[str], line: str, timeout: float = 60) -> str:
    """What the process printed up to and including `line`."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process.stdout.readline()
        if not text:
            break
        seen.append(text)
        if line in text:
            return "".join(seen)
    raise AssertionError(f"the demo never printed {line!r}:\n{''.join(seen)}")


def _publish_unsigned(amqp_url: str) -> None:
    """A message no connector signed, as H29's: the sync service dead-letters it."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().basic_publish(
            "dossier.events",
            "H29.status_changed",
            b'{"not": "signed"}',
            pika.BasicProperties(message_id="unsigned-1", type="status_changed",
                                 delivery_mode=2),
        )  # fmt: skip
    finally:
        connection.close()


def _bus(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bus", *arguments], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
