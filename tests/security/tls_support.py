"""A throwaway certificate authority, and TLS listeners added to the running local RabbitMQ.

The listeners are started inside the broker with `rabbitmqctl eval`, beside the plain one
other tests and services use: nothing is stopped or restarted, and each listener is stopped
again when its context ends, whatever happened inside it.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from bus.settings import Settings

LOCAL_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert_file: Path
    key_file: Path


class Authority:
    """A CA that lives for one test module: it issues server and client certificates into
    `directory`, which the broker (often another user) can read."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = self._write(f"{name}.ca.pem", pem)

    def server(self, stem: str, names: tuple[str, ...] = LOCAL_NAMES) -> Issued:
        """A server certificate valid for `names` (IP addresses or DNS names)."""
        alternative: list[x509.GeneralName] = []
        for name in names:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative.append(x509.DNSName(name))
        return self._issue(stem, names[0], ExtendedKeyUsageOID.SERVER_AUTH, alternative)

    def client(self, stem: str, user: str) -> Issued:
        return self._issue(stem, user, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def _issue(
        self,
        stem: str,
        common_name: str,
        usage: x509.ObjectIdentifier,
        alternative: list[x509.GeneralName],
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if alternative:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(
            cert_file=self._write(f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM)),
            key_file=self._write(f"{stem}.key", key_pem),
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        # The broker runs as its own user; these keys exist for one test run only.
        path.chmod(0o644)
        return path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@contextmanager
def readable_directory() -> Iterator[Path]:
    """A scratch directory the broker's user can read (pytest's tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="bus-tls-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RabbitCtl:
    """rabbitmqctl on this machine: it reaches the local node, whatever BUS_AMQP_URL says, so
    the listeners, the user and the virtual host of these tests are all made there."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.path, "--quiet", *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout.strip()

    @contextmanager
    def account(self, user: str, password: str, vhost: str) -> Iterator[None]:
        """A user with every permission on a virtual host of its own, both deleted after."""
        self.run("add_vhost", vhost)
        try:
            self.run("add_user", user, password)
            try:
                self.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
                yield
            finally:
                self.run("delete_user", user)
        finally:
            self.run("delete_vhost", vhost)

    @contextmanager
    def tls_listener(self, authority: Authority, server: Issued) -> Iterator[int]:
        """A TLS listener on 127.0.0.1 (its port is yielded) presenting `server`, that
        requires a client certificate issued by `authority`."""
        port = free_port()
        listener = f'{{"127.0.0.1", {port}}}'
        options = ", ".join(
            [
                f"{{cacertfile, {_erlang_string(authority.ca_file)}}}",
                f"{{certfile, {_erlang_string(server.cert_file)}}}",
                f"{{keyfile, {_erlang_string(server.key_file)}}}",
                "{verify, verify_peer}",
                "{fail_if_no_peer_cert, true}",
            ]
        )
        started = self.run(
            "eval", f"rabbit_networking:start_ssl_listener({listener}, [{options}], 1)."
        )
        if started != "ok":
            raise RuntimeError(f"the broker did not start a TLS listener on {port}: {started}")
        try:
            yield port
        finally:
            self.run("eval", f"rabbit_networking:stop_tcp_listener({listener}).")


def _erlang_string(path: Path) -> str:
    text = str(path)
    if '"' in text or "\\" in text:
        raise ValueError(f"no quoting for an Erlang string here: {text}")
    return f'"{text}"'


@dataclass(frozen=True)
class TlsBroker:
    """The local broker as these tests see it: a TLS listener whose certificate names
    127.0.0.1 and localhost, one whose certificate names another host, both requiring a
    client certificate of `authority`, and a user and virtual host of the tests' own."""

    authority: Authority
    client: Issued
    port: int
    elsewhere_port: int
    user: str
    password: str
    vhost: str

    def url(self, port: int | None = None) -> str:
        vhost = quote(self.vhost, safe="")
        return f"amqps://{self.user}:{self.password}@127.0.0.1:{port or self.port}/{vhost}"

    def env(self, **files: Path | None) -> dict[str, str | None]:
        """BUS_* variables for a client of this broker: the CA and the client certificate,
        unless `files` (ca_file, cert_file, key_file) says otherwise."""
        chosen = {
            "ca_file": self.authority.ca_file,
            "cert_file": self.client.cert_file,
            "key_file": self.client.key_file,
            **files,
        }
        return {
            "BUS_AMQP_URL": self.url(),
            **{f"BUS_AMQP_{k.upper()}": None if v is None else str(v) for k, v in chosen.items()},
        }

    def settings(self, *, port: int | None = None, **files: Path | None) -> Settings:
        chosen = {
            "amqp_ca_file": self.authority.ca_file,
            "amqp_cert_file": self.client.cert_file,
            "amqp_key_file": self.client.key_file,
            **{f"amqp_{k}": v for k, v in files.items()},
        }
        return Settings.model_validate(
            {"amqp_url": SecretStr(self.url(port)), "reconnect_max_delay": 0.5, **chosen}
        )


@contextmanager
def tls_broker(ctl: RabbitCtl) -> Iterator[TlsBroker]:
    tag = uuid.uuid4().hex[:12]
    with ExitStack() as stack:
        directory = stack.enter_context(readable_directory())
        authority = Authority(directory, "bus-test-ca")
        user, password, vhost = f"tls-{tag}", secrets.token_urlsafe(16), f"test-tls-{tag}"
        stack.enter_context(ctl.account(user, password, vhost))
        port = stack.enter_context(ctl.tls_listener(authority, authority.server("server")))
        elsewhere = authority.server("elsewhere", ("broker.elsewhere.test",))
        elsewhere_port = stack.enter_context(ctl.tls_listener(authority, elsewhere))
        yield TlsBroker(
            authority=authority,
            client=authority.client("client", user),
            port=port,
            elsewhere_port=elsewhere_port,
            user=user,
            password=password,
            vhost=vhost,
        )
