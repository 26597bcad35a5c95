"""BUS_AMQP_URL may name the nodes of a cluster, separated by commas: a connection tries them
in turn. The cluster itself, a node stopped under a flowing sync, is tests/cluster's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import certifi
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from bus.broker import BrokerUnavailable, Connection
from bus.management import management_url_for
from bus.settings import Settings, broker_urls, first_broker_url
from bus.tls import BrokerTlsError, TlsFiles

NODE_1 = "amqp://igate:secret@rabbit-1:5672/%2F"
NODE_2 = "amqp://igate:secret@rabbit-2:5672/%2F"


def test_a_single_url_is_one_node() -> None:
    assert broker_urls("amqp://guest:guest@127.0.0.1:5672/%2F") == [
        "amqp://guest:guest@127.0.0.1:5672/%2F"
    ]


def test_urls_separated_by_commas_are_the_nodes_in_the_order_given() -> None:
    listed = f" {NODE_1}, {NODE_2} ,amqps://igate:secret@rabbit-3:5671/%2F "

    assert broker_urls(listed) == [NODE_1, NODE_2, "amqps://igate:secret@rabbit-3:5671/%2F"]


def test_a_comma_inside_a_password_or_a_query_does_not_start_another_url() -> None:
    url = "amqp://igate:a,b@rabbit-1:5672/%2F?heartbeat=30,x"

    assert broker_urls(url) == [url]
    assert broker_urls(f"{url},{NODE_2}") == [url, NODE_2]


def test_something_that_is_not_an_amqp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with amqp:// or amqps://"):
        broker_urls("rabbit-1:5672")
    with pytest.raises(ValueError, match="no broker URL"):
        broker_urls("  ")


def test_the_management_api_is_found_beside_the_first_node() -> None:
    assert first_broker_url(f"{NODE_1},{NODE_2}") == NODE_1
    assert management_url_for(f"{NODE_1},{NODE_2}") == "http://igate:secret@rabbit-1:15672"


def test_a_connection_knows_every_node_and_starts_with_the_first() -> None:
    connection = Connection(f"{NODE_1},{NODE_2}", name="tests.urls")

    assert connection.addresses == ["rabbit-1:5672", "rabbit-2:5672"]
    assert connection.address == "rabbit-1:5672"
    assert connection.username == "igate"


def test_nodes_that_log_in_as_different_users_are_refused() -> None:
    # A publisher stamps its user into user_id, which the broker checks: it must not change
    # with the node.
    with pytest.raises(ValueError, match="different users: igate, other"):
        Connection(f"{NODE_1},amqp://other:secret@rabbit-2:5672/%2F", name="tests.urls")


def test_the_tls_settings_apply_to_every_node() -> None:
    # The CA file serves the first node; the second, in plain text, would not use it: refused.
    mixed = f"amqps://igate:secret@rabbit-1:5671/%2F,{NODE_2}"

    with pytest.raises(BrokerTlsError, match=r"plain-text broker \(rabbit-2:5672\)"):
        Connection(mixed, name="tests.urls", tls=TlsFiles(ca_file=Path(certifi.where())))


# ---- against the broker: a node that is down is passed over ---------------------------------


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as held:  # bound but not listening, so no one else takes it
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def on_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}"))


def test_a_node_that_refuses_is_passed_over_at_once_for_the_next(
    amqp_url: str, dead_port: int
) -> None:
    dead = on_port(amqp_url, dead_port)

    async def scenario() -> str:
        connection = Connection(f"{dead},{amqp_url}", name="tests.urls", max_delay=30)
        try:
            await connection.start(timeout=10)
            return connection.address
        finally:
            await connection.close()

    with capture_logs() as logs:
        address = asyncio.run(scenario())

    live = f"{urlsplit(amqp_url).hostname}:{urlsplit(amqp_url).port or 5672}"
    assert address == live
    [unreachable] = [line for line in logs if line["event"] == "broker unreachable"]
    # Not a backoff: the next node is tried straight away.
    assert unreachable["broker"] == f"127.0.0.1:{dead_port}"
    assert unreachable["trying"] == live
    assert "retry_in" not in unreachable


def test_the_password_file_is_put_into_every_nodes_url(
    amqp_url: str, dead_port: int, tmp_path: Path
) -> None:
    parts = urlsplit(amqp_url)
    password = tmp_path / "broker-password"
    password.write_text(f"{parts.password or 'guest'}\n")
    without = urlunsplit(
        parts._replace(netloc=f"{parts.username or 'guest'}@{parts.netloc.rpartition('@')[2]}")
    )
    listed = f"{on_port(without, dead_port)},{without}"
    settings = Settings(amqp_url=SecretStr(listed), amqp_password_file=password)

    async def scenario() -> bool:
        connection = Connection.from_settings(settings, name="tests.urls")
        try:
            await connection.start(timeout=10)
            return connection.is_open
        finally:
            await connection.close()

    assert asyncio.run(scenario())


def test_when_no_node_answers_the_error_names_them_all(dead_port: int) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        second = int(other.getsockname()[1])
        listed = f"amqp://guest:guest@127.0.0.1:{dead_port}/%2F,amqp://guest:guest@127.0.0.1:{second}/%2F"

        async def scenario() -> None:
            await Connection(listed, name="tests.urls", max_delay=0.2).start(timeout=1)

        with pytest.raises(BrokerUnavailable) as unavailable:
            asyncio.run(scenario())

    assert f"127.0.0.1:{dead_port} or 127.0.0.1:{second}" in str(unavailable.value)
