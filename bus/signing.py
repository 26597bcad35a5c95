"""Signatures that make every event attributable to the connector that published it.

A signature covers the exact body bytes and the message's identity: event id, event type,
connector, time (the AMQP properties message_id, type, app_id, timestamp) and the key id, so
neither the body nor the identity can be altered or swapped between messages. Ed25519 lets
the sync side hold only public keys (what `bus provision` makes); HMAC-SHA256 with a
per-connector secret works too.

The key registry is a JSON file: {"keys": [{"id": "igate-h29-20260115-3fa2", "connector":
"igate-h29", "alg": "ed25519", "public_key": "<base64 of the raw 32 bytes>", "unit": "H29",
"user": "igate-h29"}, {"id": ..., "connector": ..., "alg": "hmac-sha256", "secret":
"<base64>", "retired": true}]}. `unit` and `user` are optional: a key that names them is
accepted only on events routed under that unit and published by that broker user. A key
marked `retired` is refused, and kept so that the refusal can say so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.errors import OperatorError, SignatureError
from bus.headers import KEY_ID, SIGNATURE
from bus.message import Message

log = structlog.get_logger(__name__)

Algorithm = Literal["hmac-sha256", "ed25519"]
RELOAD_INTERVAL: Final = 1.0  # seconds between looks at the registry file

_LENGTHS = struct.Struct("!5H")


def signing_input(
    body: bytes,
    event_id: str | None,
    event_type: str | None,
    connector: str | None,
    timestamp: int | None,
    key_id: str,
) -> bytes:
    fields = [
        (event_id or "").encode(),
        (event_type or "").encode(),
        (connector or "").encode(),
        str(timestamp or "").encode(),
        key_id.encode(),
    ]
    # The lengths come first: no value can be crafted to shift into the next one.
    return _LENGTHS.pack(*map(len, fields)) + b"".join(fields) + body


@dataclass(frozen=True)
class Signer:
    """Signs with one key; the publisher adds its headers to every message."""

    key_id: str
    algorithm: Algorithm
    secret: bytes = field(repr=False)  # HMAC secret, or the Ed25519 private key's raw 32 bytes

    def sign(
        self, body: bytes, event_id: str, event_type: str, connector: str, timestamp: int
    ) -> dict[str, str]:
        """The signature headers for a message with this body and identity."""
        data = signing_input(body, event_id, event_type, connector, timestamp, self.key_id)
        if self.algorithm == "hmac-sha256":
            raw = hmac.digest(self.secret, data, hashlib.sha256)
        else:
            raw = self._private_key.sign(data)
        return {KEY_ID: self.key_id, SIGNATURE: base64.b64encode(raw).decode()}

    @cached_property
    def _private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.secret)

    @classmethod
    def from_text(cls, key_id: str, text: str) -> Signer:
        """A key as settings hold it: "ed25519:<base64>", or a base64 HMAC secret."""
        if text.startswith("ed25519:"):
            return cls(key_id, "ed25519", base64.b64decode(text.removeprefix("ed25519:")))
        return cls(key_id, "hmac-sha256", base64.b64decode(text.removeprefix("hmac:")))

    @classmethod
    def generate(cls, key_id: str, algorithm: Algorithm = "ed25519") -> Signer:
        """A new random key: an Ed25519 private key, or a 32-byte HMAC secret."""
        if algorithm == "ed25519":
            return cls(key_id, algorithm, Ed25519PrivateKey.generate().private_bytes_raw())
        return cls(key_id, algorithm, secrets.token_bytes(32))

    def text(self) -> str:
        """The key as settings hold it (`from_text` reads it back): "ed25519:<base64>" or
        "hmac:<base64>"."""
        prefix = "ed25519" if self.algorithm == "ed25519" else "hmac"
        return f"{prefix}:{base64.b64encode(self.secret).decode()}"

    def verify_key(
        self, connector: str, *, unit: str | None = None, user: str | None = None
    ) -> VerifyKey:
        """What a consumer needs to check this key's signatures: the public key (Ed25519),
        or the secret itself (HMAC)."""
        if self.algorithm == "ed25519":
            material = self._private_key.public_key().public_bytes_raw()
        else:
            material = self.secret
        return VerifyKey(self.key_id, connector, self.algorithm, material, unit=unit, user=user)


@dataclass(frozen=True)
class VerifyKey:
    key_id: str
    connector: str
    algorithm: Algorithm
    material: bytes = field(repr=False)  # HMAC secret, or the Ed25519 public key's 32 bytes
    unit: str | None = None  # the only unit whose routing keys it signs for
    user: str | None = None  # the only broker user whose publishes it signs
    retired: bool = False

    def matches(self, signature: bytes, data: bytes) -> bool:
        if self.algorithm == "hmac-sha256":
            return hmac.compare_digest(hmac.digest(self.material, data, hashlib.sha256), signature)
        try:
            self._public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def entry(self) -> dict[str, Any]:
        """The key as the registry file holds it (`KeyRing.load` reads it back)."""
        material = base64.b64encode(self.material).decode()
        field = "public_key" if self.algorithm == "ed25519" else "secret"
        entry: dict[str, Any] = {
            "id": self.key_id,
            "connector": self.connector,
            "alg": self.algorithm,
            field: material,
        }
        if self.unit is not None:
            entry["unit"] = self.unit
        if self.user is not None:
            entry["user"] = self.user
        if self.retired:
            entry["retired"] = True
        return entry

    @cached_property
    def _public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.material)


class KeyRing:
    """The keys a consumer accepts, each bound to the one connector allowed to use it, and
    when the registry says so to one unit and one broker user.

    A ring loaded from its file reads the file again when it changes (looked at once a
    second at most), so that a key added or retired with `bus provision` takes effect in a
    running sync service without a restart.
    """

    def __init__(self, keys: list[VerifyKey]) -> None:
        self._keys = {key.key_id: key for key in keys}
        self._path: Path | None = None  # the file to follow, when loaded from one
        self._seen: tuple[int, int] | None = None
        self._looked = time.monotonic()

    def __iter__(self) -> Iterator[VerifyKey]:
        return iter(list(self._keys.values()))

    def get(self, key_id: str) -> VerifyKey | None:
        return self._keys.get(key_id)

    def of_connector(self, connector: str) -> list[VerifyKey]:
        """The connector's keys, retired ones included, in the order they were added."""
        return [key for key in self._keys.values() if key.connector == connector]

    def verify(self, message: Message) -> None:
        """Raise SignatureError unless the message is signed by its own connector's key, a key
        not retired, and (when the key names them) for its unit and by its broker user."""
        self._reload_if_changed()
        key_id = message.headers.get(KEY_ID)
        signature = message.headers.get(SIGNATURE)
        if not key_id or not signature:
            raise SignatureError("message is not signed")
        key = self._keys.get(str(key_id))
        if key is None:
            raise SignatureError(f"unknown key id {key_id!r}")
        if key.retired:
            raise SignatureError(f"key {key_id!r} of connector {key.connector!r} is retired")
        if message.app_id != key.connector:
            raise SignatureError(
                f"key {key_id!r} belongs to connector {key.connector!r}, not {message.app_id!r}"
            )
        if key.user is not None and message.published_by != key.user:
            raise SignatureError(
                f"key {key_id!r} signs only what broker user {key.user!r} publishes, and"
                f" {_who(message.published_by)} published this"
            )
        if key.unit is not None and message.unit != key.unit:
            raise SignatureError(
                f"key {key_id!r} signs only unit {key.unit}'s events, not one routed as"
                f" {message.original_routing_key!r}"
            )
        try:
            raw = base64.b64decode(str(signature), validate=True)
        except binascii.Error:
            raise SignatureError("signature is not base64") from None
        data = signing_input(
            message.body,
            message.message_id,
            message.type,
            message.app_id,
            message.timestamp,
            key.key_id,
        )
        if not key.matches(raw, data):
            raise SignatureError("signature does not match the body and the event's identity")

    # ---- the registry file: `bus provision` is its one writer, through these -------------

    def add(self, key: VerifyKey) -> None:
        if key.key_id in self._keys:
            raise OperatorError(f"the key registry already holds a key {key.key_id!r}")
        self._keys[key.key_id] = key

    def retire(self, key_id: str) -> VerifyKey:
        """Mark the key retired: what it signed is refused from now on. The retired key."""
        key = self._keys.get(key_id)
        if key is None:
            known = ", ".join(sorted(self._keys)) or "none"
            raise OperatorError(f"the key registry holds no key {key_id!r} (it holds: {known})")
        self._keys[key_id] = retired = replace(key, retired=True)
        return retired

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        seen = _stamp(path)  # before reading: a change while we read is seen next time
        ring = cls(_read(path))
        ring._path, ring._seen = path, seen
        return ring

    def save(self, path: Path) -> Path:
        """Write the registry file (`BUS_VERIFY_KEYS_FILE`) holding these keys: whole or not
        at all, for a sync service may read it at any moment. A file holding an HMAC secret
        is never readable by all: a new one by its owner only, an existing one keeps the
        group the sync service may read it through."""
        entries = [key.entry() for key in self._keys.values()]
        text = json.dumps({"keys": entries}, indent=2) + "\n"
        secret = any(key.algorithm == "hmac-sha256" for key in self._keys.values())
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode) & (0o770 if secret else 0o777)
        else:
            mode = 0o600 if secret else 0o644
        draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(draft, mode)  # the umask may have taken bits away
            os.replace(draft, path)
        except BaseException:
            draft.unlink(missing_ok=True)
            raise
        return path

    def _reload_if_changed(self) -> None:
        if self._path is None or time.monotonic() - self._looked < RELOAD_INTERVAL:
            return
        self._looked = time.monotonic()
        seen = _stamp(self._path)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            keys = _read(self._path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            # A registry being edited by hand: keep the keys we have, and say so once.
            log.error("key registry unreadable, keeping its last keys", error=str(error))
            return
        self._keys = {key.key_id: key for key in keys}
        log.info("key registry reloaded", keys=len(keys))


def _read(path: Path) -> list[VerifyKey]:
    return [_verify_key(entry) for entry in json.loads(path.read_text("utf-8"))["keys"]]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def _who(user: str | None) -> str:
    return "no known user" if user is None else f"{user!r}"


def _verify_key(entry: dict[str, Any]) -> VerifyKey:
    algorithm: Algorithm = "ed25519" if entry["alg"] == "ed25519" else "hmac-sha256"
    material = entry["public_key"] if algorithm == "ed25519" else entry["secret"]
    return VerifyKey(
        entry["id"],
        entry["connector"],
        algorithm,
        base64.b64decode(material),
        unit=entry.get("unit"),
        user=entry.get("user"),
        retired=bool(entry.get("retired", False)),
    )
