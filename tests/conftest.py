"""Fixtures shared by the whole suite.

RabbitMQ: tests reach the broker through ``amqp_url``, and its HTTP API through
``management_url``. Tests using either are marked ``broker``, so ``pytest -m "not broker"``
runs everything that needs no broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import structlog

import bus.logging
from broker import (
    HOW_TO_GET_ONE,
    Broker,
    BrokerControl,
    docker_engine_answers,
    in_vhost,
    management,
    management_url_for,
    rabbitmq_container,
    why_unreachable,
)
from bus.settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def logging_left_as_found(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command run in-process (click's CliRunner) configures logging as production does,
    which caches each logger on first use, bound to the stream of that moment: later tests
    would lose those loggers' lines. In tests nothing is cached, and every test ends with
    structlog's defaults."""
    configure = bus.logging.configure_logging

    def uncached(settings: Settings) -> None:
        configure(settings)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(bus.logging, "configure_logging", uncached)
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # fixturenames holds every fixture the test needs, directly or through others.
        if "rabbitmq" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[Broker]:
    """The session's broker: the one BUS_AMQP_URL names, else a throwaway one in Docker.

    A BUS_AMQP_URL that is set but dead is always an error. With neither, the broker tests
    fail in CI and skip elsewhere, saying how to get a broker.
    """
    if amqp_url := os.environ.get("BUS_AMQP_URL"):
        if problem := why_unreachable(amqp_url):
            pytest.fail(problem, pytrace=False)
        management_url = os.environ.get("BUS_MANAGEMENT_URL") or management_url_for(amqp_url)
        yield Broker(amqp_url, management_url)
    elif docker_engine_answers():
        with rabbitmq_container() as broker:
            yield broker
    elif os.environ.get("CI", "").lower() in {"true", "1"}:
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)
    else:
        pytest.skip(HOW_TO_GET_ONE)


@pytest.fixture(scope="session")
def amqp_url(rabbitmq: Broker) -> str:
    return rabbitmq.amqp_url


@pytest.fixture(scope="session")
def management_url(rabbitmq: Broker) -> str:
    """Base URL of the broker's management HTTP API, e.g. http://guest:guest@127.0.0.1:15672."""
    return rabbitmq.management_url


@pytest.fixture
def vhost(rabbitmq: Broker) -> Iterator[str]:
    """An AMQP URL of a virtual host of its own, deleted after the test: tests never see
    each other's queues."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    management(rabbitmq.management_url, "PUT", f"/api/vhosts/{name}")
    user = urlsplit(rabbitmq.amqp_url).username or "guest"
    management(
        rabbitmq.management_url,
        "PUT",
        f"/api/permissions/{name}/{user}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    try:
        yield in_vhost(rabbitmq.amqp_url, name)
    finally:
        management(rabbitmq.management_url, "DELETE", f"/api/vhosts/{name}")


@pytest.fixture
def broker_control(rabbitmq: Broker) -> Iterator[BrokerControl]:
    """Faults for the local broker; whatever the test does, the broker is running after."""
    control = BrokerControl()
    if control.rabbitmqctl is None or urlsplit(rabbitmq.amqp_url).hostname not in LOCAL_HOSTS:
        message = "broker fault tests need the broker on this machine, with rabbitmqctl"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield control
    finally:
        control.start_app()  # idempotent: a running app just answers


POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A scratch database on the local PostgreSQL (its SQLAlchemy URL), dropped after the
    module: the sample SQL system and the sql_poll connector are tried on it."""
    try:
        admin = psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 with user postgres and trust auth: {error}")
    name = f"test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
