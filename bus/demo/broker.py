"""Which RabbitMQ the demo uses (BUS_AMQP_URL's, the local one, or one in Docker), its
management API, the demo's scratch virtual host in it, and how many messages a queue holds."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

import pika

from bus.demo.errors import DemoError
from bus.management import (
    MANAGEMENT_PORT,
    Management,
    ManagementError,
    in_vhost,
    management_url_for,
)
from bus.topology import SYNC_QUEUE

DEFAULT_AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
RABBITMQ_IMAGE: Final = "rabbitmq:3.13-management"

NO_BROKER: Final = """no RabbitMQ broker for the demo. Any one of these will do:
  - install RabbitMQ (Debian/Ubuntu: apt-get install rabbitmq-server; macOS: brew install
    rabbitmq); `make demo` starts it when it is installed but stopped (`make services`);
  - name a broker you have: BUS_AMQP_URL=amqp://user:password@host:5672/%2F make demo;
  - start Docker: the demo then runs RabbitMQ in a container by itself."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Broker:
    amqp_url: str
    management_url: str  # http://user:password@host:port, the HTTP API's base
    where: str  # which broker, for people


@contextlib.contextmanager
def find_broker(amqp_url: str | None, management_url: str | None, say: Say) -> Iterator[Broker]:
    """BUS_AMQP_URL if set; else the local broker; else one in Docker; else how to get one.

    The Makefile exports BUS_AMQP_URL with the local default whatever the machine has, so
    that value counts as unset: without a local broker, `make demo` still goes on to Docker.
    """
    if amqp_url and amqp_url != DEFAULT_AMQP_URL:
        if problem := _unreachable(amqp_url):
            raise DemoError(
                f"BUS_AMQP_URL is set, but {problem}: start that broker, or unset BUS_AMQP_URL"
                " to use a local one"
            )
        where = f"RabbitMQ at {_authority(amqp_url)} (BUS_AMQP_URL)"
        yield Broker(amqp_url, management_url or management_url_for(amqp_url), where)
    elif _unreachable(DEFAULT_AMQP_URL) is None:
        where = f"local RabbitMQ at {_authority(DEFAULT_AMQP_URL)}"
        yield Broker(
            DEFAULT_AMQP_URL, management_url or management_url_for(DEFAULT_AMQP_URL), where
        )
    elif _docker_answers():
        say("  no local RabbitMQ: starting one in Docker (the first time pulls its image)")
        with _rabbitmq_container() as broker:
            yield broker
    else:
        raise DemoError(NO_BROKER)


def _authority(url: str) -> str:
    """host:port of a URL, without its credentials (they would end up in logs)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5672}"


def _unreachable(amqp_url: str) -> str | None:
    """Why nothing accepts connections at the URL's host and port; None when something does."""
    parts = urlsplit(amqp_url)
    try:
        socket.create_connection((parts.hostname or "localhost", parts.port or 5672), 3).close()
    except OSError as error:
        return f"nothing accepts connections at {_authority(amqp_url)} ({error})"
    return None


def _docker_answers() -> bool:
    """Whether testcontainers can start a container: the engine itself must answer, not
    only a `docker` command (many machines have the client without an engine)."""
    try:
        from testcontainers.core.docker_client import DockerClient

        with contextlib.closing(DockerClient(timeout=5).client) as client:
            client.ping()
    except Exception:  # not installed, no socket, engine down: all mean no Docker
        return False
    return True


@contextlib.contextmanager
def _rabbitmq_container() -> Iterator[Broker]:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    with RabbitMqContainer(RABBITMQ_IMAGE).with_exposed_ports(MANAGEMENT_PORT) as container:
        host = container.get_container_host_ip()
        userinfo = f"{container.username}:{container.password}"
        amqp_port = container.get_exposed_port(container.port)
        http_port = container.get_exposed_port(MANAGEMENT_PORT)
        yield Broker(
            f"amqp://{userinfo}@{host}:{amqp_port}/%2F",
            f"http://{userinfo}@{host}:{http_port}",
            f"RabbitMQ in Docker at {host}:{amqp_port}",
        )


@dataclass(frozen=True)
class VirtualHost:
    amqp_url: str
    name: str
    scratch: bool  # the demo's own, deleted at the end


@contextlib.contextmanager
def scratch_vhost(broker: Broker, say: Say) -> Iterator[VirtualHost]:
    """A virtual host of the demo's own, made and deleted through the management API, so
    that its queues never meet anyone else's. Without the API: the URL's own, said aloud."""
    name = f"demo-{uuid.uuid4().hex[:8]}"
    with Management(broker.management_url, timeout=10) as api:
        try:
            api.create_vhost(name)
        except ManagementError as error:
            own = unquote(urlsplit(broker.amqp_url).path[1:]) or "/"
            say(
                f"  {error}: using the virtual host {own!r} instead of a scratch one"
                " (enable it: rabbitmq-plugins enable rabbitmq_management)"
            )
            _refuse_others_messages(broker.amqp_url, own)
            yield VirtualHost(broker.amqp_url, own, scratch=False)
            return
        try:
            yield VirtualHost(in_vhost(broker.amqp_url, name), name, scratch=True)
        finally:
            api.delete_vhost(name)


def _refuse_others_messages(amqp_url: str, vhost: str) -> None:
    """In a shared virtual host, the demo's sync service would take (and, not knowing their
    signing keys, dead-letter) messages meant for another: refuse rather than do that."""
    waiting = queue_depth(amqp_url, SYNC_QUEUE)
    if waiting:
        raise DemoError(
            f"{SYNC_QUEUE} in virtual host {vhost!r} holds {waiting} messages that are not the"
            " demo's; enable the management plugin (rabbitmq-plugins enable"
            " rabbitmq_management) so the demo can work in a virtual host of its own"
        )


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in `queue` (0 if it does not exist), as the broker counts them."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code == 404:
            return 0
        raise
    finally:
        if connection.is_open:
            connection.close()
