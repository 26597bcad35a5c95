"""The TLS settings of the broker connection, checked before anything is sent: no broker
needed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pika.exceptions
import pytest
from pydantic import SecretStr
from tls_support import Authority

from bus.broker import Connection
from bus.settings import Settings
from bus.tls import BrokerTlsError, TlsFiles

TLS_URL = SecretStr("amqps://guest:guest@broker.example:5671/%2F")


def test_the_context_verifies_the_brokers_certificate_and_name_and_refuses_tls_below_1_2(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path, "ca")
    client = authority.client("client", "igate")

    context = TlsFiles(authority.ca_file, client.cert_file, client.key_file).context()

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "ca"),),)]


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("BUS_AMQP_CA_FILE", "amqp_ca_file"),
        ("BUS_AMQP_CERT_FILE", "amqp_cert_file"),
        ("BUS_AMQP_KEY_FILE", "amqp_key_file"),
    ],
)
def test_a_missing_certificate_file_is_reported_by_its_setting_when_the_connection_is_made(
    tmp_path: Path, setting: str, field: str
) -> None:
    authority = Authority(tmp_path, "ca")
    client = authority.client("client", "igate")
    files = {
        "amqp_ca_file": authority.ca_file,
        "amqp_cert_file": client.cert_file,
        "amqp_key_file": client.key_file,
        field: tmp_path / "gone.pem",
    }

    with pytest.raises(BrokerTlsError) as refused:
        Connection.from_settings(
            Settings.model_validate({"amqp_url": TLS_URL, **files}), name="tests.tls"
        )

    assert str(refused.value) == (
        f"{setting}: cannot read {tmp_path / 'gone.pem'} (No such file or directory)"
    )


def test_a_file_that_is_not_a_certificate_and_its_key_is_reported_by_both_settings(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path, "ca")
    client = authority.client("client", "igate")
    other = authority.client("other", "igate")

    with pytest.raises(BrokerTlsError) as refused:
        TlsFiles(authority.ca_file, client.cert_file, other.key_file).context()

    assert str(refused.value).startswith(
        f"BUS_AMQP_CERT_FILE / BUS_AMQP_KEY_FILE: {client.cert_file} with the key in"
        f" {other.key_file} is not a PEM certificate and its private key"
    )


def test_a_ca_file_without_a_certificate_in_it_is_reported_by_its_setting(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificate here\n")

    with pytest.raises(BrokerTlsError) as refused:
        TlsFiles(ca_file=empty).context()

    assert str(refused.value).startswith(
        f"BUS_AMQP_CA_FILE: no usable PEM CA certificate in {empty}"
    )


def test_a_key_file_without_a_certificate_file_is_refused(tmp_path: Path) -> None:
    key = Authority(tmp_path, "ca").client("client", "igate").key_file

    with pytest.raises(BrokerTlsError, match="BUS_AMQP_KEY_FILE is set without BUS_AMQP_CERT_FILE"):
        TlsFiles(key_file=key).context()


def test_certificate_files_for_a_plain_amqp_url_are_refused_rather_than_ignored(
    tmp_path: Path,
) -> None:
    ca = Authority(tmp_path, "ca").ca_file
    plain = Settings(
        amqp_url=SecretStr("amqp://guest:guest@broker.example:5672/%2F"), amqp_ca_file=ca
    )

    with pytest.raises(BrokerTlsError) as refused:
        Connection.from_settings(plain, name="tests.tls")

    assert "names a plain-text broker (broker.example:5672): use amqps://" in str(refused.value)


def test_a_broker_that_hangs_up_right_after_the_handshake_is_suspected_not_condemned() -> None:
    # What pika hands over when the stream ends as the AMQP handshake starts: only words.
    # A broker refusing our certificate can look like this, but so can a proxy with no broker
    # behind it, so the connection keeps trying, with this as the reason it gives.
    lost = pika.exceptions.IncompatibleProtocolError(
        "StreamLostError: (\"Stream connection lost: SSLEOFError(8, 'EOF occurred in"
        " violation of protocol (_ssl.c:2427)')\",)"
    )

    suspicion = TlsFiles().failure(lost, "broker.example:5671", "broker.example")

    assert suspicion is not None
    assert not suspicion.certain
    assert str(suspicion) == (
        "the broker at broker.example:5671 closed the connection right after the TLS"
        " handshake: it most likely requires a client certificate, and none was presented"
        " (set BUS_AMQP_CERT_FILE and BUS_AMQP_KEY_FILE)"
    )


def test_a_refused_plain_connection_is_not_taken_for_a_tls_failure() -> None:
    refused = pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "refused"))

    assert TlsFiles().failure(refused, "broker.example:5671", "broker.example") is None
