"""`bus portal-sim`: the simulator as a command, served by uvicorn in the foreground."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from portal_sim_support import PortalClient, codes, dossier_item

from bus.cli import main


def a_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def command_url(tmp_path: Path) -> Iterator[str]:
    """`bus portal-sim` running in a process of its own, stopped with SIGTERM after."""
    port = a_free_port()
    args = ["--port", str(port), "--db", str(tmp_path / "sim.sqlite3"), "--password", "s3cret"]
    process = subprocess.Popen(
        [sys.executable, "-c", "from bus.cli import main; main()", "portal-sim", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not answers(f"{url}/healthz"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"bus portal-sim did not start: {process.communicate()[1]}")
        time.sleep(0.05)
    yield url
    process.terminate()
    _, log = process.communicate(timeout=10)
    # uvicorn shuts down gracefully, then dies of the signal it caught, as its parent expects.
    assert process.returncode in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_help_lists_the_options_and_the_operator_endpoints() -> None:
    result = CliRunner().invoke(main, ["portal-sim", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--db", "--password", "--session-ttl", "--log-level"):
        assert option in result.output
    assert "/_sim/" in result.output


def test_the_command_serves_the_portal_with_the_password_it_was_given(command_url: str) -> None:
    client = PortalClient(command_url)
    assert client.login()["error_code"] == 401
    assert client.login(password="s3cret")["error_code"] == 0
    assert codes(client.sync([dossier_item(1)])) == [0]
    client.close()
