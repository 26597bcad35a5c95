"""TLS to the broker, against the local RabbitMQ: listeners with certificates of a CA made by
the tests, added beside the plain one while the broker runs, and removed after."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from tls_support import Authority, RabbitCtl, TlsBroker, tls_broker

from bus.broker import BrokerUnavailable, Connection
from bus.cli import main
from bus.message import Message, Outgoing
from bus.publisher import Publisher
from bus.settings import Settings
from bus.tls import BrokerTlsError

RABBITMQCTL = shutil.which("rabbitmqctl")
IN_CI = os.environ.get("CI", "").lower() in {"true", "1"}
NEEDS = (
    "the TLS tests add listeners to the local RabbitMQ with rabbitmqctl, which is not on"
    " PATH here: install RabbitMQ on this machine to run them"
)

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(RABBITMQCTL is None and not IN_CI, reason=NEEDS),
]


@pytest.fixture(scope="module")
def broker() -> Iterator[TlsBroker]:
    if RABBITMQCTL is None:  # in CI: a missing broker is a failure, not a skip
        pytest.fail(NEEDS, pytrace=False)
    with tls_broker(RabbitCtl(RABBITMQCTL)) as made:
        yield made


@pytest.fixture(scope="module")
def stranger(broker: TlsBroker) -> Authority:
    """A CA the broker has never heard of, in the same scratch directory."""
    return Authority(broker.authority.directory, "stranger-ca")


async def refusal(settings: Settings) -> BrokerTlsError:
    connection = Connection.from_settings(settings, name="tests.tls")
    with pytest.raises(BrokerTlsError) as refused:
        await connection.start(timeout=10)
    return refused.value


async def refusal_by_the_broker(settings: Settings) -> str:
    """Why the broker refused our certificate. It says so with a TLS alert, and start() ends
    at once; were the connection to end before the alert is read, the same words would come
    as BrokerUnavailable once start() gives up."""
    connection = Connection.from_settings(settings, name="tests.tls")
    with pytest.raises((BrokerTlsError, BrokerUnavailable)) as refused:
        await connection.start(timeout=10)
    return str(refused.value)


def test_a_connection_over_amqps_with_the_ca_and_a_client_certificate_carries_a_message(
    broker: TlsBroker,
) -> None:
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    sent = Outgoing("", queue, b"over TLS", message_id=str(uuid.uuid4()))

    async def scenario() -> Message:
        connection = Connection.from_settings(broker.settings(), name="tests.tls")
        publisher = Publisher(connection)
        await connection.start(timeout=10)
        try:
            channel = await connection.channel()
            await channel.declare_queue(queue)
            await publisher.publish(sent)
            arrived: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            await channel.consume(queue, arrived.set_result, prefetch=1, arguments=None)
            received = await asyncio.wait_for(arrived, 10)
            channel.ack(received.delivery_tag)
            return received
        finally:
            await connection.close()

    received = asyncio.run(scenario())

    assert (received.body, received.message_id) == (sent.body, sent.message_id)


def test_a_client_that_trusts_another_ca_is_refused_naming_the_broker_and_the_unknown_ca(
    broker: TlsBroker, stranger: Authority
) -> None:
    error = asyncio.run(refusal(broker.settings(ca_file=stranger.ca_file)))

    assert f"TLS to the broker at 127.0.0.1:{broker.port} failed: unknown CA" in str(error)
    assert str(stranger.ca_file) in str(error)


def test_a_client_trusting_only_the_systems_cas_is_refused_by_a_broker_of_a_private_ca(
    broker: TlsBroker,
) -> None:
    error = asyncio.run(refusal(broker.settings(ca_file=None)))

    assert "unknown CA" in str(error)
    assert "BUS_AMQP_CA_FILE is not set" in str(error)


def test_a_client_without_a_client_certificate_is_refused_by_the_broker(
    broker: TlsBroker,
) -> None:
    error = asyncio.run(refusal_by_the_broker(broker.settings(cert_file=None, key_file=None)))

    assert f"the broker at 127.0.0.1:{broker.port}" in error
    assert "requires a client certificate" in error
    assert "(set BUS_AMQP_CERT_FILE and BUS_AMQP_KEY_FILE)" in error


def test_a_client_certificate_of_a_ca_the_broker_does_not_trust_is_refused_by_the_broker(
    broker: TlsBroker, stranger: Authority
) -> None:
    theirs = stranger.client("stranger-client", broker.user)

    error = asyncio.run(
        refusal_by_the_broker(broker.settings(cert_file=theirs.cert_file, key_file=theirs.key_file))
    )

    assert f"the broker at 127.0.0.1:{broker.port}" in error
    assert f"the client certificate BUS_AMQP_CERT_FILE ({theirs.cert_file})" in error


def test_a_broker_certificate_for_another_host_name_is_refused(broker: TlsBroker) -> None:
    error = asyncio.run(refusal(broker.settings(port=broker.elsewhere_port)))

    assert f"TLS to the broker at 127.0.0.1:{broker.elsewhere_port} failed" in str(error)
    assert "host name mismatch: its certificate is not valid for '127.0.0.1'" in str(error)


def test_a_missing_client_certificate_file_is_reported_by_its_setting_before_connecting(
    broker: TlsBroker,
) -> None:
    missing = broker.authority.directory / "no-such-client.pem"

    with pytest.raises(BrokerTlsError) as refused:
        Connection.from_settings(broker.settings(cert_file=missing), name="tests.tls")

    assert str(refused.value) == (
        f"BUS_AMQP_CERT_FILE: cannot read {missing} (No such file or directory)"
    )


def test_bus_topology_apply_works_over_tls_with_the_certificate_settings(
    broker: TlsBroker,
) -> None:
    result = CliRunner().invoke(main, ["topology", "apply"], env=broker.env())

    assert result.exit_code == 0, result.output
    assert "queue    portal.sync  quorum" in result.output


def test_bus_topology_apply_reports_a_refused_tls_handshake_in_one_line(
    broker: TlsBroker, stranger: Authority
) -> None:
    result = CliRunner().invoke(
        main, ["topology", "apply"], env=broker.env(ca_file=stranger.ca_file)
    )

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: TLS to the broker at 127.0.0.1:{broker.port}")
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
