"""The faults a campaign injects, and what puts everything back.

- `BrokerFaults`: the local RabbitMQ node through `rabbitmqctl` (its app stopped and started,
  its disk alarm raised by a free-disk limit above the free space) and its management API
  (every connection of one virtual host closed by force). `restore()` leaves the node running,
  alarm-free, with the limit it had: a campaign calls it at its start and in a `finally`.
- `PortalFaults`: the simulator's `/_sim/faults` (5xx, 429 with Retry-After, stalls beyond
  the client's timeout, sessions dropped, connections reset).
- `Service`: a child process that can be killed with SIGKILL and started again, as a crash
  and a supervisor's restart would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from bus.management import Management, vhost_of

HUGE_DISK_LIMIT: Final = str(2**62)  # bytes: no disk has that much free, so the alarm goes off


class BrokerFaults:
    """Faults of the RabbitMQ node on this machine; `restore()` undoes any of them."""

    def __init__(self, management_url: str, amqp_url: str) -> None:
        found = shutil.which("rabbitmqctl")
        if found is None:
            raise RuntimeError("rabbitmqctl is not on PATH: broker faults need the local node")
        self.rabbitmqctl = found
        self.management_url = management_url
        self.vhost = vhost_of(amqp_url)
        self.disk_limit = self._disk_limit()

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return subprocess.run(
            [self.rabbitmqctl, *args], check=True, capture_output=True, text=True, timeout=timeout
        ).stdout

    def _disk_limit(self) -> str:
        """The node's free-disk limit in bytes now, to put back after an alarm."""
        limit = self.ctl("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        # A campaign killed during an alarm left the huge limit: that is not the one to keep.
        return "50MB" if not limit.isdigit() or limit == HUGE_DISK_LIMIT else limit

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def raise_disk_alarm(self) -> None:
        self.ctl("set_disk_free_limit", HUGE_DISK_LIMIT)

    def clear_disk_alarm(self) -> None:
        self.ctl("set_disk_free_limit", self.disk_limit)

    def close_connections(self) -> int:
        """Close every connection to the campaign's virtual host; how many there were."""
        with Management(self.management_url) as api:
            names = api.connections(self.vhost)
            for name in names:
                api.close_connection(name)
        return len(names)

    def running(self) -> bool:
        return self.ctl("eval", "rabbit:is_running().").strip() == "true"

    def restore(self) -> None:
        """The node running, with its own disk limit: whatever state a fault left it in."""
        if not self.running():
            self.start_app()
        self.clear_disk_alarm()


class PortalFaults:
    """The simulator's fault settings, changed through its control API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        if method == "POST" and data is None:
            data = b""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=data,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def set(self, **changes: Any) -> None:
        self.call("PUT", "/_sim/faults", changes)

    def clear(self) -> None:
        self.call("PUT", "/_sim/faults", {"clear": True})


class Service:
    """A child process of `argv`, killed with SIGKILL and started again at will."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path | None = None
    ) -> None:
        self.name, self.argv, self.env, self.log_path = name, list(argv), dict(env), log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        if self._log is None and self.log_path is not None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, as `kill -9`: no handler runs, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_http(url: str, service: Service, timeout: float = 30) -> None:
    """Return once `url` answers; raise if the service died or it takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or not service.alive():
                raise RuntimeError(f"{service.name} did not start") from None
            time.sleep(0.1)
