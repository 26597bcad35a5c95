"""How the tests reach a RabbitMQ broker; the ``rabbitmq`` fixture in conftest.py picks one.

Standard library only, so that this module imports anywhere; testcontainers is imported
only when Docker is tried.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

IMAGE = "rabbitmq:3.13-management"
MANAGEMENT_PORT = 15672

HOW_TO_GET_ONE = (
    "no RabbitMQ broker for the tests: set BUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F "
    "(`make services` starts one on this machine), or start Docker so testcontainers can run one"
)


@dataclass(frozen=True)
class Broker:
    amqp_url: str
    management_url: str  # base of the HTTP API, credentials included


def why_unreachable(amqp_url: str) -> str | None:
    """Why nothing accepts connections at ``amqp_url``, or None when something does."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "localhost"  # pika's defaults for what the URL leaves out
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        # The URL's credentials stay out of the message: it ends up in CI logs.
        return (
            f"BUS_AMQP_URL is set, but nothing accepts connections at {host}:{port} ({error}); "
            "start that broker (`make services` for a local one), or unset BUS_AMQP_URL"
        )
    return None


def management_url_for(amqp_url: str) -> str:
    """The management API of the broker at ``amqp_url``: same host and credentials."""
    parts = urlsplit(amqp_url)
    userinfo = parts.netloc.rpartition("@")[0] or "guest:guest"
    host = parts.hostname or "localhost"
    if ":" in host:  # an IPv6 address goes back in brackets
        host = f"[{host}]"
    return f"http://{userinfo}@{host}:{MANAGEMENT_PORT}"


def docker_engine_answers() -> bool:
    """Whether testcontainers can start a container here.

    A ``docker`` command is not enough (CI machines have the client but no engine), so ask
    the engine itself, through testcontainers' own client: it finds the engine the way
    testcontainers will (DOCKER_HOST, docker contexts, ~/.testcontainers.properties).
    """
    try:
        from testcontainers.core.docker_client import DockerClient

        with closing(DockerClient(timeout=5).client) as client:
            client.ping()
    except Exception:  # not installed, no socket, engine down: all mean no Docker
        return False
    return True


@contextmanager
def rabbitmq_container() -> Iterator[Broker]:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    with RabbitMqContainer(IMAGE).with_exposed_ports(MANAGEMENT_PORT) as container:
        host = container.get_container_host_ip()
        userinfo = f"{container.username}:{container.password}"
        amqp_port = container.get_exposed_port(container.port)
        http_port = container.get_exposed_port(MANAGEMENT_PORT)
        yield Broker(
            amqp_url=f"amqp://{userinfo}@{host}:{amqp_port}/%2F",
            management_url=f"http://{userinfo}@{host}:{http_port}",
        )


def management(management_url: str, method: str, path: str, body: object = None) -> object:
    """Call the management HTTP API; `path` starts with /api/."""
    import base64
    import json
    import urllib.request

    parts = urlsplit(management_url)
    credentials = base64.b64encode(
        f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
    ).decode()
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.hostname}:{parts.port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def in_vhost(amqp_url: str, vhost: str) -> str:
    """The same broker and credentials, another virtual host."""
    from urllib.parse import quote

    parts = urlsplit(amqp_url)
    return parts._replace(path="/" + quote(vhost, safe="")).geturl()


class BrokerControl:
    """rabbitmqctl on this machine, for tests that inject broker faults."""

    def __init__(self) -> None:
        import shutil

        self.rabbitmqctl = shutil.which("rabbitmqctl")

    def run(self, *args: str) -> str:
        import subprocess

        assert self.rabbitmqctl is not None
        return subprocess.run(
            [self.rabbitmqctl, *args], check=True, capture_output=True, text=True, timeout=120
        ).stdout

    def close_all_connections(self) -> None:
        self.run("close_all_connections", "--global", "test: forced close")

    def stop_app(self) -> None:
        self.run("stop_app")

    def start_app(self) -> None:
        self.run("start_app")
        self.run("await_startup")
