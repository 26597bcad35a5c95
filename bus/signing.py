"""Signatures that make every event attributable to the connector that published it.

A signature covers the exact body bytes and the message's identity: event id, event type,
connector, time (the AMQP properties message_id, type, app_id, timestamp) and the key id, so
neither the body nor the identity can be altered or swapped between messages. HMAC-SHA256
with a per-connector secret is the default; Ed25519 lets the sync side hold only public keys.

The key registry is a JSON file: {"keys": [{"id": "igate-hcm-2026", "connector": "igate-hcm",
"alg": "hmac-sha256", "secret": "<base64>"}, {"id": ..., "connector": ..., "alg": "ed25519",
"public_key": "<base64 of the raw 32 bytes>"}]}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.errors import SignatureError
from bus.headers import KEY_ID, SIGNATURE
from bus.message import Message

Algorithm = Literal["hmac-sha256", "ed25519"]

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
    secret: bytes  # HMAC secret, or the Ed25519 private key's raw 32 bytes

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


@dataclass(frozen=True)
class VerifyKey:
    key_id: str
    connector: str
    algorithm: Algorithm
    material: bytes  # HMAC secret, or the Ed25519 public key's raw 32 bytes

    def matches(self, signature: bytes, data: bytes) -> bool:
        if self.algorithm == "hmac-sha256":
            return hmac.compare_digest(hmac.digest(self.material, data, hashlib.sha256), signature)
        try:
            self._public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def entry(self) -> dict[str, str]:
        """The key as the registry file holds it (`KeyRing.load` reads it back)."""
        material = base64.b64encode(self.material).decode()
        field = "public_key" if self.algorithm == "ed25519" else "secret"
        return {"id": self.key_id, "connector": self.connector, "alg": self.algorithm,
                field: material}  # fmt: skip

    @cached_property
    def _public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.material)


class KeyRing:
    """The keys a consumer accepts, each bound to the one connector allowed to use it."""

    def __init__(self, keys: list[VerifyKey]) -> None:
        self._keys = {key.key_id: key for key in keys}

    def verify(self, message: Message) -> None:
        """Raise SignatureError unless the message is signed by its own connector's key."""
        key_id = message.headers.get(KEY_ID)
        signature = message.headers.get(SIGNATURE)
        if not key_id or not signature:
            raise SignatureError("message is not signed")
        key = self._keys.get(str(key_id))
        if key is None:
            raise SignatureError(f"unknown key id {key_id!r}")
        if message.app_id != key.connector:
            raise SignatureError(
                f"key {key_id!r} belongs to connector {key.connector!r}, not {message.app_id!r}"
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

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        entries = json.loads(path.read_text("utf-8"))["keys"]
        return cls([_verify_key(entry) for entry in entries])

    def save(self, path: Path) -> Path:
        """Write the registry file (`BUS_VERIFY_KEYS_FILE`) holding these keys."""
        entries = [key.entry() for key in self._keys.values()]
        path.write_text(json.dumps({"keys": entries}, indent=2), "utf-8")
        return path


def _verify_key(entry: dict[str, str]) -> VerifyKey:
    if entry["alg"] == "ed25519":
        return VerifyKey(
            entry["id"], entry["connector"], "ed25519", base64.b64decode(entry["public_key"])
        )
    return VerifyKey(
        entry["id"], entry["connector"], "hmac-sha256", base64.b64decode(entry["secret"])
    )
