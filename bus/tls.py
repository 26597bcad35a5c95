"""TLS to the broker: the context an `amqps://` connection is made with, and what a failed
handshake means, said in words an operator can act on.

The broker's certificate must chain to `BUS_AMQP_CA_FILE` (or, when it is unset, to the
system's CAs) and name the host of `BUS_AMQP_URL`; a client certificate is presented when
`BUS_AMQP_CERT_FILE` is set; nothing older than TLS 1.2 is spoken. A file that cannot be
used is reported when the connection is made, by the setting that names it, before
anything is sent.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bus.errors import BusError

if TYPE_CHECKING:
    from bus.settings import Settings

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

# OpenSSL's X509_V_ERR_* codes that mean "no CA this client trusts signed this certificate".
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}
_EXPIRED = 10
_NAME_MISMATCH = {62, 64}  # a host name, an IP address


class BrokerTlsError(BusError):
    """TLS to the broker cannot work as configured: a certificate file, the broker's
    certificate, or the client certificate the broker expects. Retrying does not help,
    unless the error is not `certain`: a broker that hangs up right after the handshake most
    likely refused our certificate, but a proxy with no broker behind it does the same."""

    def __init__(self, message: str, *, certain: bool = True) -> None:
        super().__init__(message)
        self.certain = certain


@dataclass(frozen=True)
class TlsFiles:
    """The certificate files of the `BUS_AMQP_*_FILE` settings."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsFiles:
        return cls(settings.amqp_ca_file, settings.amqp_cert_file, settings.amqp_key_file)

    def context_for(self, tls: bool, address: str) -> ssl.SSLContext | None:
        """The context of a connection to `address`, None when it is plain text (`tls`:
        whether its URL is amqps://). Files set for a plain-text URL are refused: whoever
        set them believes the connection is private, and it would not be."""
        if tls:
            return self.context()
        if any((self.ca_file, self.cert_file, self.key_file)):
            raise BrokerTlsError(
                "BUS_AMQP_CA_FILE, BUS_AMQP_CERT_FILE or BUS_AMQP_KEY_FILE is set, but"
                f" BUS_AMQP_URL names a plain-text broker ({address}): use amqps://"
            )
        return None

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker and presents our certificate, if any."""
        for setting, path in self._named():
            try:
                with path.open("rb"):
                    pass
            except OSError as error:
                raise BrokerTlsError(
                    f"{setting}: cannot read {path} ({error.strerror or error})"
                ) from None
        if self.key_file is not None and self.cert_file is None:
            raise BrokerTlsError("BUS_AMQP_KEY_FILE is set without BUS_AMQP_CERT_FILE")
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except ssl.SSLError as error:
            raise BrokerTlsError(
                f"BUS_AMQP_CA_FILE: no usable PEM CA certificate in {self.ca_file} ({error})"
            ) from None
        # create_default_context already verifies the chain and the host name; say it anyway,
        # so that no later default can quietly turn either off.
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        context.minimum_version = MINIMUM_VERSION
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, ValueError) as error:
                key = self.key_file or f"{self.cert_file} itself (BUS_AMQP_KEY_FILE is not set)"
                raise BrokerTlsError(
                    f"BUS_AMQP_CERT_FILE / BUS_AMQP_KEY_FILE: {self.cert_file} with the key in"
                    f" {key} is not a PEM certificate and its private key ({error})"
                ) from None
        return context

    def _named(self) -> Iterator[tuple[str, Path]]:
        for setting, path in (
            ("BUS_AMQP_CA_FILE", self.ca_file),
            ("BUS_AMQP_CERT_FILE", self.cert_file),
            ("BUS_AMQP_KEY_FILE", self.key_file),
        ):
            if path is not None:
                yield setting, path

    def failure(
        self, error: BaseException, broker: str, server_hostname: str
    ) -> BrokerTlsError | None:
        """What a failed connection to `broker` (host:port) says about TLS, or None when it
        is not about TLS (a refused port, a broker restarting: worth retrying)."""
        causes = list(_causes(error))
        unverified = [c for c in causes if isinstance(c, ssl.SSLCertVerificationError)]
        if unverified:
            what = self._unverified(unverified[0], server_hostname)
        elif (reason := _ssl_reason(causes)) is not None:
            what = self._handshake(reason)
        elif _hung_up_after_handshake(causes):
            return BrokerTlsError(
                f"the broker at {broker} closed the connection right after the TLS handshake:"
                f" {self._suspect()}",
                certain=False,
            )
        else:
            return None
        return BrokerTlsError(f"TLS to the broker at {broker} failed: {what}")

    def _unverified(self, error: ssl.SSLCertVerificationError, server_hostname: str) -> str:
        trusted = (
            f"BUS_AMQP_CA_FILE ({self.ca_file})"
            if self.ca_file is not None
            else "the system's CAs (BUS_AMQP_CA_FILE is not set)"
        )
        code, detail = error.verify_code, error.verify_message
        if code in _NAME_MISMATCH:
            return (
                f"host name mismatch: its certificate is not valid for {server_hostname!r};"
                " connect with a name the certificate holds (the host of BUS_AMQP_URL)"
            )
        if code in _UNKNOWN_ISSUER:
            return (
                f"unknown CA: its certificate is not signed by a CA in {trusted} ({detail});"
                " set BUS_AMQP_CA_FILE to the CA that signed the broker's certificate"
            )
        if code == _EXPIRED:
            return f"its certificate has expired ({detail})"
        return f"its certificate was not accepted ({detail})"

    def _handshake(self, reason: str) -> str:
        if reason == "WRONG_VERSION_NUMBER":
            return (
                "it does not speak TLS on that port (amqps:// needs the broker's TLS listener,"
                " 5671 by default)"
            )
        if "PROTOCOL_VERSION" in reason or reason == "UNSUPPORTED_PROTOCOL":
            return "no common protocol version: this client speaks only TLS 1.2 and newer"
        refused = f"the broker refused the handshake ({reason})"
        if "CERTIFICATE_REQUIRED" in reason or self.cert_file is None:
            return (
                f"{refused}: it requires a client certificate (set BUS_AMQP_CERT_FILE and"
                " BUS_AMQP_KEY_FILE)"
            )
        if "UNKNOWN_CA" in reason:
            return (
                f"{refused}: it does not trust the CA that signed the client certificate"
                f" BUS_AMQP_CERT_FILE ({self.cert_file})"
            )
        return f"{refused}: {self._suspect()}"

    def _suspect(self) -> str:
        if self.cert_file is None:
            return (
                "it most likely requires a client certificate, and none was presented"
                " (set BUS_AMQP_CERT_FILE and BUS_AMQP_KEY_FILE)"
            )
        return (
            f"it most likely did not accept the client certificate BUS_AMQP_CERT_FILE"
            f" ({self.cert_file}): is it signed by a CA the broker trusts, and still valid?"
        )


_SSL_REASON = re.compile(r"\[SSL: (?P<reason>[A-Z0-9_]+)\]")


def _ssl_reason(causes: list[BaseException | str]) -> str | None:
    """OpenSSL's reason for the first TLS error among `causes` (e.g. WRONG_VERSION_NUMBER,
    TLSV13_ALERT_CERTIFICATE_REQUIRED), not counting a connection that just ended.

    With TLS 1.3 the broker checks our certificate after our side of the handshake is done:
    its refusal arrives as pika starts the AMQP handshake, and pika keeps only the words of
    the error it saw then."""
    for cause in causes:
        if isinstance(cause, ssl.SSLEOFError):
            continue
        if isinstance(cause, ssl.SSLError):
            return str(cause.reason or cause)
        if isinstance(cause, str) and (found := _SSL_REASON.search(cause)):
            return found["reason"]
    return None


def _hung_up_after_handshake(causes: list[BaseException | str]) -> bool:
    # An SSLEOFError during the handshake itself (an object) is a dropped connection; one
    # pika saw only after it (kept as words) is the broker hanging up on what we sent.
    return any(isinstance(cause, str) and "SSLEOFError" in cause for cause in causes)


def _causes(error: BaseException) -> Iterator[BaseException | str]:
    """`error` and everything it wraps: pika nests the real cause in arguments, in lists of
    attempts, and sometimes only in the text of another error."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str):
            yield item
        elif isinstance(item, BaseException):
            yield item
            todo.extend(item.args)
            todo.extend(getattr(item, "exceptions", None) or ())
            todo.append(getattr(item, "exception", None))
            todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)
        elif isinstance(item, list | tuple):
            todo.extend(item)
