"""`bus demo`, as a newcomer runs it: the whole pipeline, bounded, ending with a summary.

Run as a child process, exactly as `make demo` runs it, so that its exit code and its output
are what is checked, and its signal handlers and event loop are its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
