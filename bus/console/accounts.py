"""Operator accounts: who may log in to the console, with which password, over which units.

The accounts live in a TOML file (`BUS_CONSOLE_ACCOUNTS_FILE`, or `bus console --accounts`),
one table per operator:

    [operators.national]
    password = "scrypt$16384$8$1$<salt>$<hash>"   # from `bus console hash-password`
    units = "*"                                    # every unit: a national operator

    [operators.hanoi]
    password = "scrypt$16384$8$1$<salt>$<hash>"
    units = ["H29"]                                # a provincial operator: H29 only

Passwords are never stored, only their scrypt hash: memory-hard, so that a stolen file is
expensive to guess from, with a salt of its own per account, in one self-describing string
whose cost parameters can be raised later without breaking the accounts already written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bus.ops.operator import Operator

# scrypt's cost: 16 MiB of memory and about 50 ms per try on a server core.
N: Final = 2**14
R: Final = 8
P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
SCHEME: Final = "scrypt"
EVERY_UNIT: Final = "*"


class AccountsError(Exception):
    """The accounts file cannot be used; the message says where and why, for a person."""


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """`scrypt$n$r$p$salt$hash` (base64): everything needed to check a password later."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p)
    return "$".join([SCHEME, str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` is the one `encoded` was made from; the comparison takes the same
    time wherever the digests differ, so it tells an attacker nothing."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:  # a malformed hash (binascii.Error is one) never matches
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: OpenSSL's default (32 MiB) refuses n * r above 2**15 * 1 already.
    memory = 128 * n * r * p + 1024 * 1024
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory, dklen=HASH_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    units: frozenset[str] | None  # None: every unit (a national operator)

    def operator(self) -> Operator:
        return Operator(self.name, self.units)

    @property
    def national(self) -> bool:
        return self.units is None


class Accounts:
    """The accounts of one file, by name."""

    def __init__(self, accounts: list[Account]) -> None:
        self._accounts = {account.name: account for account in accounts}

    def __len__(self) -> int:
        return len(self._accounts)

    def get(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account, if the password is its own. An unknown name costs a hash as well,
        so that the time taken does not tell which names exist."""
        account = self._accounts.get(name)
        if account is None:
            verify_password(password, _DECOY)
            return None
        return account if verify_password(password, account.password_hash) else None

    @classmethod
    def load(cls, path: Path) -> Accounts:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise AccountsError(f"{path}: cannot read the accounts file ({error})") from None
        tables = data.get("operators")
        if not isinstance(tables, dict) or not tables:
            raise AccountsError(f"{path}: no [operators.<name>] table")
        return cls([_account(path, name, table) for name, table in tables.items()])


def _account(path: Path, name: str, table: object) -> Account:
    where = f"{path}: operators.{name}"
    if not isinstance(table, dict):
        raise AccountsError(f"{where}: must be a table")
    password = table.get("password")
    if not isinstance(password, str) or not password.startswith(SCHEME + "$"):
        raise AccountsError(
            f"{where}: password must be a hash from `bus console hash-password`, never the"
            " password itself"
        )
    units = table.get("units")
    if units == EVERY_UNIT:
        return Account(name, password, None)
    if not isinstance(units, list) or not units or not all(isinstance(u, str) for u in units):
        raise AccountsError(f'{where}: units must be "*" or a list of unit codes, like ["H29"]')
    return Account(name, password, frozenset(u.upper() for u in units))


_DECOY: Final = hash_password(secrets.token_urlsafe())
