"""Connector accounts: a broker user that may publish only its own unit's events, and a
signing key registered for it, made together (`bus provision`).

    broker user <name>-<unit>   no tags; on its virtual host configure ^$, write
                                ^dossier\\.events$, read ^$; on dossier.events' routing keys
                                write ^<UNIT>\\. and read ^$
    signing key                 Ed25519 by default; the private key goes to a file (0600),
                                the public key to the key registry with connector, unit, user

The connector's broker user is also its name (the config's `[connector] name`, the events'
app_id), so that the broker's connection list, the logs and the registry all say the same.
Secrets go to files only, never to the output: the password file, the key file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

from bus.errors import OperatorError
from bus.management import Management
from bus.signing import Algorithm, KeyRing, Signer, VerifyKey
from bus.topology import EVENTS_EXCHANGE
from schemas.units import load_units

# Nothing to declare, bind or delete; publish to the events exchange only (so never to the
# default exchange, straight into a queue, where the bus's own headers are believed); read
# nothing.
CONFIGURE: Final = "^$"
WRITE: Final = f"^{re.escape(EVENTS_EXCHANGE)}$"
READ: Final = "^$"
TOPIC_READ: Final = "^$"
# The connector config's rule for names, which the broker user's name doubles as.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,62}")
_UNIT = re.compile(r"[GH][0-9]{2}")


def topic_write(unit: str) -> str:
    """The routing keys a unit's connector may publish: its events and its heartbeats."""
    return f"^{re.escape(unit)}\\."


def connector_name(name: str, unit: str) -> str:
    """The connector's name and broker user: `igate` of H29 is `igate-h29`; a name that
    already holds its unit (`h29-igate`) stays as it is."""
    lowered, code = name.strip().lower(), unit.lower()
    full = lowered if code in re.split(r"[-_.]", lowered) else f"{lowered}-{code}"
    if _NAME.fullmatch(full) is None:
        raise OperatorError(
            f"{full!r} cannot name a connector: letters, digits, '-', '_' and '.', starting"
            " with a letter or digit, at most 63 characters"
        )
    return full


def known_unit(unit: str, units_file: Path | None = None) -> str:
    """`unit` as the contract spells it (`H29`), if the units table knows it: the packaged
    one, or a deployment's own (`units_file`, `unit,name,kind`)."""
    code = unit.strip().upper()
    if _UNIT.fullmatch(code) is None:
        raise OperatorError(
            f"{unit!r} is not a unit code: G (ministry) or H (province) and two digits, e.g. H29"
        )
    units = load_units(units_file)
    if code not in units:
        where = "the units table" if units_file is None else str(units_file)
        raise OperatorError(
            f"unit {code} is not in {where} ({', '.join(sorted(units))}); check the code, or"
            " give your deployment's table with --units-file"
        )
    return code


@dataclass(frozen=True)
class NewKey:
    key: VerifyKey
    file: Path  # the private key (or HMAC secret), mode 0600
    others: tuple[VerifyKey, ...]  # the connector's keys still valid beside it


@dataclass(frozen=True)
class Account:
    connector: str  # also its broker user
    unit: str
    vhost: str
    password_file: Path
    signing: NewKey
    created: bool  # False: an existing account got a new password and key (--rotate)


def provision_connector(
    api: Management,
    registry: Path,
    secrets_dir: Path,
    *,
    unit: str,
    name: str,
    vhost: str,
    algorithm: Algorithm = "ed25519",
    rotate: bool = False,
    units_file: Path | None = None,
) -> Account:
    """Make the connector's broker user with its permissions, write its password and a new
    signing key to `secrets_dir`, and register the key. With `rotate`, the connector exists:
    it gets a new password, its permissions set back to these, and a new key beside its
    others (retire them with `retire_key` once it runs on the new one)."""
    unit = known_unit(unit, units_file)
    connector = connector_name(name, unit)
    ring = _ring(registry)
    keys = ring.of_connector(connector)
    if not api.vhost_exists(vhost):
        raise OperatorError(f"the broker has no virtual host {vhost!r}")
    exists = api.find_user(connector) is not None
    if (exists or keys) and not rotate:
        held = f"broker user {connector!r}" if exists else f"keys {_ids(keys)}"
        raise OperatorError(
            f"connector {connector!r} is already provisioned ({held}): give --rotate for a new"
            " password and key, or `bus provision rotate-key` for a new key only"
        )
    if rotate and not (exists or keys):
        raise OperatorError(
            f"connector {connector!r} has no broker user and no key to rotate; leave out --rotate"
        )
    if others := sorted({key.unit for key in keys if key.unit is not None and key.unit != unit}):
        raise OperatorError(
            f"connector {connector!r} is registered for unit {', '.join(others)}, not {unit}"
        )
    password_file = secrets_dir / f"{connector}.broker-password"
    signer = Signer.generate(_new_key_id(ring, connector), algorithm)
    key_file = secrets_dir / f"{signer.key_id}.signing-key"
    key = signer.verify_key(connector, unit=unit, user=connector)
    written: list[Path] = []
    try:
        password = secrets.token_urlsafe(32)
        api.put_user(connector, password, tags="")
        api.set_permissions(vhost, connector, configure=CONFIGURE, write=WRITE, read=READ)
        api.set_topic_permissions(
            vhost, connector, EVENTS_EXCHANGE, write=topic_write(unit), read=TOPIC_READ
        )
        written.append(write_secret(password_file, password))
        written.append(write_secret(key_file, signer.text()))
        ring.add(key)
        ring.save(registry)
    except BaseException:
        if not exists:
            with contextlib.suppress(Exception):
                api.delete_user(connector)
        for path in written:
            # A rotated password is the broker's now: its file stays, the key's goes.
            if path == key_file or not exists:
                path.unlink(missing_ok=True)
        raise
    signing = NewKey(key, key_file, _active(keys))
    return Account(connector, unit, vhost, password_file, signing, created=not exists)


def rotate_key(
    registry: Path, secrets_dir: Path, connector: str, algorithm: Algorithm = "ed25519"
) -> NewKey:
    """A new key for the connector, valid beside its others, bound to the same unit and
    broker user; its file in `secrets_dir`."""
    ring = _ring(registry)
    keys = ring.of_connector(connector)
    if not keys:
        raise OperatorError(
            f"the key registry has no connector {connector!r}; `bus provision connector` makes one"
        )
    last = keys[-1]
    signer = Signer.generate(_new_key_id(ring, connector), algorithm)
    key_file = write_secret(secrets_dir / f"{signer.key_id}.signing-key", signer.text())
    try:
        key = signer.verify_key(connector, unit=last.unit, user=last.user)
        ring.add(key)
        ring.save(registry)
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise
    return NewKey(key, key_file, _active(keys))


def retire_key(registry: Path, key_id: str) -> tuple[VerifyKey, tuple[VerifyKey, ...], bool]:
    """Retire the key: what it signs is refused from now on. The key, the connector's keys
    still valid, and whether it was retired already (nothing written then)."""
    ring = _ring(registry, must_exist=True)
    before = ring.get(key_id)
    key = ring.retire(key_id)
    if before is not None and not before.retired:
        ring.save(registry)
    return key, _active(ring.of_connector(key.connector)), bool(before and before.retired)


def write_secret(path: Path, text: str) -> Path:
    """Write `text` to `path`, readable and writable by its owner only (0600), whole or not
    at all; a file already there is replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(draft, path)
    except BaseException:
        draft.unlink(missing_ok=True)
        raise
    return path


def connector_amqp_url(amqp_url: str, user: str, vhost: str) -> str:
    """BUS_AMQP_URL for the connector: the broker and vhost of `amqp_url` and the
    connector's user, without a password (BUS_AMQP_PASSWORD_FILE gives it)."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{user}@{host}{port}/{quote(vhost, safe='')}{query}"


def _ring(registry: Path, *, must_exist: bool = False) -> KeyRing:
    if registry.exists():
        return KeyRing.load(registry)
    if must_exist:
        raise OperatorError(f"no key registry at {registry}")
    return KeyRing([])


def _new_key_id(ring: KeyRing, connector: str) -> str:
    while True:  # two keys made the same day differ by their random tail
        key_id = f"{connector}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
        if ring.get(key_id) is None:
            return key_id


def _active(keys: list[VerifyKey]) -> tuple[VerifyKey, ...]:
    return tuple(key for key in keys if not key.retired)


def _ids(keys: list[VerifyKey]) -> str:
    return ", ".join(key.key_id for key in keys)
