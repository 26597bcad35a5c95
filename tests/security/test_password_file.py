"""A service logs in to the broker with the password of BUS_AMQP_PASSWORD_FILE: a Docker or
systemd secret, where no shell is there to put it into BUS_AMQP_URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from broker import Broker
from bus.broker import Connection
from bus.settings import Settings


def test_a_connection_logs_in_with_the_password_of_its_file(
    rabbitmq: Broker, tmp_path: Path
) -> None:
    parts = urlsplit(rabbitmq.amqp_url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    secret = tmp_path / "broker-password"
    secret.write_text(f"{password}\n")
    settings = Settings(
        amqp_url=urlunsplit(parts._replace(netloc=f"{user}:wrong@{host}")),
        amqp_password_file=secret,
    )

    async def log_in() -> str:
        connection = Connection.from_settings(settings, name="password-file")
        await connection.start(timeout=10)
        await connection.close()
        return connection.username

    assert asyncio.run(log_in()) == user
