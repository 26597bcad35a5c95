"""A three-node RabbitMQ cluster on this machine, for the tests of this folder.

Each node is a `rabbitmq-server` of its own: its own node name (bus-c1-<run>@localhost …),
AMQP, distribution and management ports, and a data, log and config folder in one scratch
folder; the management and consistent-hash exchange plugins enabled. Node 1 boots, the
other two join it (`stop_app`, `join_cluster`, `start_app`). Afterwards every node is stopped
(killed if it will not stop) and the folder deleted, whatever happened.

The broker of the other tests (rabbit@localhost on 5672/15672) is never touched: every
`rabbitmqctl` call names one of these nodes with `-n`, and the nodes share the Erlang cookie
of the user running the tests (`~/.erlang.cookie`, made as Erlang would if there is none),
which on a Debian machine is not the packaged broker's.

On Debian, `rabbitmq-server` on PATH is a wrapper that runs the real script as the
`rabbitmq` user when called as root (as CI does); the real scripts beside it are used
instead, run as the current user.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from bus.management import Management

NODES: Final = 3
PLUGINS: Final = ("rabbitmq_management", "rabbitmq_consistent_hash_exchange")
BOOT_TIMEOUT: Final = 120  # seconds a node may take to boot, on a busy 2-core machine
CTL_TIMEOUT: Final = 120


class ClusterUnavailable(Exception):
    """No RabbitMQ installation to run nodes from."""


def rabbitmq_scripts() -> Path:
    """The folder of the real rabbitmq-server, rabbitmqctl and rabbitmq-plugins scripts."""
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise ClusterUnavailable(
            "the cluster tests run RabbitMQ nodes of their own: install rabbitmq-server"
            " (`.ci/run` does on CI)"
        )
    script = Path(found).resolve()
    if script.name != "rabbitmq-server":  # Debian's rabbitmq-script-wrapper
        script = (script.parent / "rabbitmq-server").resolve()
    if script.name != "rabbitmq-server" or not (script.parent / "rabbitmqctl").exists():
        raise ClusterUnavailable(f"no rabbitmqctl beside the rabbitmq-server script {script}")
    return script.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ensure_cookie() -> None:
    """The current user's Erlang cookie, made now if there is none: three nodes booting at
    once would each make one, and might not make the same."""
    cookie = Path.home() / ".erlang.cookie"
    if cookie.exists():
        return
    with contextlib.suppress(FileExistsError):
        fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as out:
            out.write("".join(random.choices(string.ascii_uppercase, k=20)))


@dataclass
class Node:
    name: str  # bus-c1-<run>@localhost
    amqp_port: int
    dist_port: int
    management_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def short(self) -> str:
        """bus-c1-…, as the management API's node fields name it without the host."""
        return self.name.partition("@")[0]

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            # Not /etc/rabbitmq's: they configure the packaged broker.
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "rabbitmq.pid"),
            # Erlang distribution on loopback only, as the packaged broker's.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def write_files(self) -> None:
        self.folder.mkdir(parents=True)
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.management_port}\n"
            # The API's queue and connection views, which the tests read, every second.
            "collect_statistics_interval = 1000\n"
            # Four nodes on one machine: each may take only a share of its memory.
            "vm_memory_high_watermark.relative = 0.15\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "advanced.config").write_text("[].\n")
        (self.folder / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")


class Cluster:
    """Three clustered nodes; `amqp_url` lists them all, as BUS_AMQP_URL does."""

    def __init__(self, folder: Path) -> None:
        self.scripts = rabbitmq_scripts()
        run = secrets.token_hex(2)
        self.nodes = [
            Node(
                f"bus-c{i}-{run}@localhost",
                _free_port(),
                _free_port(),
                _free_port(),
                folder / f"c{i}",
            )
            for i in range(1, NODES + 1)
        ]

    @property
    def amqp_url(self) -> str:
        return ",".join(node.amqp_url for node in self.nodes)

    def amqp_url_from(self, first: Node) -> str:
        """Every node's URL, `first`'s first and the others in turn after it."""
        at = self.nodes.index(first)
        return ",".join(node.amqp_url for node in self.nodes[at:] + self.nodes[:at])

    def node(self, short_or_full: str) -> Node:
        return next(n for n in self.nodes if short_or_full in (n.name, n.short))

    # ---- rabbitmqctl, always with -n: never the default node --------------------------------

    def ctl(self, node: Node, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        done = subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-n", node.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ.copy(),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.name} {' '.join(args)} failed ({done.returncode}):"
                f" {done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout

    def stop_app(self, node: Node) -> None:
        self.ctl(node, "stop_app")

    def start_app(self, node: Node) -> None:
        self.ctl(node, "start_app")
        self.ctl(node, "await_startup", "--timeout", str(BOOT_TIMEOUT))

    def running_nodes(self, asking: Node) -> set[str]:
        status = self.ctl(asking, "eval", "rabbit_nodes:all_running().")
        return {name for name in (n.name for n in self.nodes) if f"'{name}'" in status}

    def management(self, node: Node) -> Management:
        return Management(node.management_url, timeout=10)

    def api(self, path: str, *, avoid: Node | None = None) -> Any:
        """GET `path` of the first node's API that answers (not `avoid`'s)."""
        failures = []
        for node in self.nodes:
            if node is avoid:
                continue
            try:
                with self.management(node) as api:
                    return api.call("GET", path)
            except Exception as error:  # a stopped node's API does not answer
                failures.append(f"{node.short}: {error}")
        raise RuntimeError(f"no management API answers {path}: {'; '.join(failures)}")

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        _ensure_cookie()
        # One epmd for every node, started apart from them: the packaged broker may rely
        # on it too, and must not lose it when these nodes are killed.
        subprocess.run(
            [shutil.which("epmd") or "epmd", "-daemon"],
            check=False,
            start_new_session=True,
            env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
            timeout=30,
        )
        for node in self.nodes:
            node.write_files()
            node._log = (node.folder / "server.out").open("wb")
            node.process = subprocess.Popen(
                [str(self.scripts / "rabbitmq-server")],
                env=node.environment(),
                stdin=subprocess.DEVNULL,
                stdout=node._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its process group, to kill whatever it started
            )
        with ThreadPoolExecutor(NODES) as pool:
            list(pool.map(self._await_boot, self.nodes))
        first, *others = self.nodes
        for node in others:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.start_app(node)
        self.await_running({n.name for n in self.nodes})

    def _await_boot(self, node: Node) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            assert node.process is not None
            if node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited while booting: {self.tail(node)}")
            try:
                self.ctl(node, "await_startup", "--timeout", "10", timeout=30)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                # Not registered with epmd yet: await_startup cannot reach it at all.
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{node.name} did not boot in {BOOT_TIMEOUT} s: {self.tail(node)}"
                    ) from None
                time.sleep(1)

    def await_running(self, names: set[str], timeout: float = 60) -> None:
        """Wait until the cluster says exactly `names` are running."""
        deadline = time.monotonic() + timeout
        asking = self.node(next(iter(names)))
        while (running := self.running_nodes(asking)) != names:
            if time.monotonic() > deadline:
                raise RuntimeError(f"running nodes {sorted(running)}, not {sorted(names)}")
            time.sleep(0.5)

    def tail(self, node: Node, lines: int = 20) -> str:
        texts = [node.folder / "server.out", *sorted((node.folder / "log").glob("*.log"))]
        found = [p.read_text(errors="replace") for p in texts if p.exists()]
        return "\n".join("\n".join(found).splitlines()[-lines:])

    def stop(self) -> None:
        """Every node down and its processes gone; never raises."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.process.terminate()  # the VM stops its applications
        for node in self.nodes:
            if node.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(30)
            # Whatever it started and left behind (erl_child_setup, port programs).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)
            if node._log is not None:
                node._log.close()


@contextlib.contextmanager
def three_node_cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="bus-cluster-"))
    try:
        cluster = Cluster(folder)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
