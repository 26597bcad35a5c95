"""The one settings object, read from `BUS_*` environment variables at the entry point and
passed down; no other module reads the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUS_", frozen=True, extra="ignore")

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        description="Broker URL; amqps:// for TLS. For a cluster, one URL per node separated by"
        " commas: the first that answers is used, and the next one when it drops. Secret"
        " because it holds a password.",
    )
    amqp_password_file: Path | None = Field(
        None,
        description="File holding the broker password (a Docker or systemd secret); it"
        " replaces the password of BUS_AMQP_URL, which then need not hold one.",
    )
    amqp_ca_file: Path | None = Field(
        None, description="CA certificate(s) the broker's TLS certificate must chain to (amqps://)."
    )
    amqp_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) to present to the broker over TLS."
    )
    amqp_key_file: Path | None = Field(None, description="The client certificate's private key.")
    prefetch: int = Field(200, ge=1, description="Unacked deliveries per consumer.")
    publish_window: int = Field(1000, ge=1, description="Unconfirmed publishes in flight.")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Larger bodies dead-letter.")
    retry_delays: tuple[float, ...] = Field(
        (1.0, 10.0, 60.0, 600.0), description="Seconds each retry tier holds a message."
    )
    max_attempts: int = Field(
        5, ge=1, description="Handling attempts before a failing message is dead-lettered."
    )
    delivery_limit: int = Field(
        20, ge=1, description="Broker-side redelivery cap on portal.sync or a shard (crash loops)."
    )
    audit_max_age: str = Field("30D", description="Retention of the dossier.audit stream.")
    audit_max_bytes: int = Field(20 * 1024**3, description="Size cap of the dossier.audit stream.")
    reconnect_max_delay: float = Field(5.0, gt=0, description="Backoff cap between reconnects.")
    signing_key_id: str | None = Field(None, description="Key id this process signs with.")
    signing_key: SecretStr | None = Field(
        None,
        description='Key to sign with: "ed25519:<base64 of the private key\'s 32 bytes>", or an'
        " HMAC secret in base64.",
    )
    signing_key_file: Path | None = Field(None, description="File holding the signing key.")
    verify_keys_file: Path | None = Field(
        None, description="Key registry (JSON) of the keys the consumer accepts."
    )
    portal_url: str = Field(
        "http://127.0.0.1:8700",
        description="Base URL of the national portal's sync API; by default the simulator's.",
    )
    portal_username: str = Field("dossier-bus", description="Account the bus logs in with.")
    portal_password: SecretStr = Field(
        SecretStr("dossier-bus"), description="Its password; the default is the simulator's."
    )
    portal_timeout: float = Field(
        10.0, gt=0, description="Seconds to connect, to send, and to wait for each answer."
    )
    sync_concurrency: int = Field(
        8, ge=1, description="Portal calls in flight at once, and pooled connections."
    )
    sync_rate: float = Field(
        20.0, gt=0, description="Most portal calls per second; a 429 halves the rate for a while."
    )
    sync_min_rate: float = Field(1.0, gt=0, description="How low 429s can push the rate.")
    breaker_threshold: int = Field(
        5, ge=1, description="Portal failures in a row that open the circuit breaker."
    )
    breaker_cooldown: float = Field(
        5.0, gt=0, description="Seconds the breaker stays open before one probe call."
    )
    breaker_max_cooldown: float = Field(
        300.0, gt=0, description="Cap of the cooldown, which doubles with each failed probe."
    )
    state_url: SecretStr = Field(
        SecretStr("sqlite:///bus-state.sqlite3"),
        description="Per-dossier state store: sqlite:///file or postgresql://... (may hold a"
        " password).",
    )
    sync_batch_size: int = Field(100, ge=1, description="Most items in one portal call.")
    sync_shards: int = Field(
        1,
        ge=1,
        le=256,
        description="Shard queues events are spread over by dossier code (1: the single queue"
        " portal.sync); each has one active consumer, so a dossier's events stay in order.",
    )
    sync_workers: int = Field(
        1, ge=1, description="Sync workers sharing the shards (each takes its share first)."
    )
    sync_worker_index: int = Field(
        0, ge=0, description="This worker's number among them, from 0 (`bus sync run --worker`)."
    )
    sync_cache_dossiers: int = Field(
        20_000,
        ge=1,
        description="Dossiers whose applied state the sync service keeps in memory; older ones"
        " are read back from the state store.",
    )
    dedup_window: int = Field(
        20_000,
        ge=1,
        description="Event ids a consumer remembers to drop redelivered copies; the state"
        " store's per-dossier seq stops any older copy.",
    )
    sync_linger: float = Field(
        0.005, ge=0, description="Seconds a batch waits for more items before it leaves."
    )
    allow_unsigned: bool = Field(
        False, description="Consume without signature checks (development only)."
    )
    log_format: Literal["json", "console", "auto"] = Field(
        "auto", description="json in production; console when attached to a terminal."
    )
    log_level: str = Field("info")
    metrics_host: str = Field(
        "127.0.0.1", description="Address the probe server (/metrics, /healthz, /readyz) binds."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the probe server; None: none, unless the command has a default.",
    )
    ops_url: SecretStr = Field(
        SecretStr("sqlite:///bus-ops.sqlite3"),
        description="Operator store (dead letters collected from portal.sync.dlq, audit log of"
        " operator actions): sqlite:///file or postgresql://... (may hold a password).",
    )
    console_accounts_file: Path | None = Field(
        None, description="The operator console's accounts (TOML: name, password hash, units)."
    )
    console_secret: SecretStr | None = Field(
        None,
        description="Key signing the console's session cookies; unset: a random one per"
        " process, and every session ends with it.",
    )
    console_metrics_urls: tuple[str, ...] = Field(
        ("http://127.0.0.1:9101/metrics",),
        description="The /metrics the console scrapes for the flow per unit (JSON list).",
    )
    console_port: int = Field(8780, ge=0, le=65535, description="Port `bus console` serves on.")

    @field_validator("amqp_password_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        # Said at start, by its setting's name, not at the first reconnect hours later.
        if path is not None:
            try:
                path.read_text("utf-8")
            except OSError as error:
                raise ValueError(f"cannot read {path} ({error.strerror or error})") from None
        return path

    def broker_url(self) -> str:
        """BUS_AMQP_URL, every node of it with the password of BUS_AMQP_PASSWORD_FILE when
        one is set."""
        urls = self.amqp_url.get_secret_value()
        if self.amqp_password_file is None:
            return urls
        password = quote(self.amqp_password_file.read_text("utf-8").strip(), safe="")
        return ",".join(_with_password(url, password) for url in broker_urls(urls))


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]  # as the URL spells it, percent-encoded
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


# A comma starts another URL only where one begins: a comma inside a password or a query
# stays where it is.
_NEXT_URL = re.compile(r"\s*,\s*(?=amqps?://)", re.IGNORECASE)


def broker_urls(urls: str) -> list[str]:
    """The broker URLs of a `BUS_AMQP_URL`: one, or the nodes of a cluster separated by
    commas (`amqp://u:p@rabbit-1/%2F,amqp://u:p@rabbit-2/%2F`), in the order they are tried."""
    found = [url for url in _NEXT_URL.split(urls.strip()) if url]
    if not found:
        raise ValueError("no broker URL given")
    for url in found:
        if not url.lower().startswith(("amqp://", "amqps://")):
            raise ValueError(f"a broker URL starts with amqp:// or amqps://, not {url[:8]!r}")
    return found


def first_broker_url(urls: str) -> str:
    """The first of the broker URLs of a `BUS_AMQP_URL`: where the tools that need one node
    (its management API, its virtual host) look."""
    return broker_urls(urls)[0]
