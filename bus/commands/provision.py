"""`bus provision`: a connector's broker account and its signing keys (`bus/provision.py`).

What they print names files and variables, never a secret: the password and the private key
are only ever in the files written to `--secrets-dir`, mode 0600.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

if TYPE_CHECKING:
    from bus.provision import NewKey
    from bus.settings import Settings
    from bus.signing import Algorithm

ALGORITHMS = click.Choice(["ed25519", "hmac-sha256"])


def _keys_file(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--keys-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The key registry the sync service reads. Default: BUS_VERIFY_KEYS_FILE.",
    )(function)


def _secrets(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--algorithm",
        type=ALGORITHMS,
        default="ed25519",
        show_default=True,
        help="ed25519: the registry holds only the public key. hmac-sha256: a shared secret.",
    )(function)
    return click.option(
        "--secrets-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Where the private key (and password) files go, mode 0600.",
    )(function)


@click.group()
def provision() -> None:
    """Connector accounts: a broker user that may publish only its own unit's events, and
    the keys its events are signed with."""


@provision.command("connector")
@click.option("--unit", required=True, help="The connector's unit, e.g. H29.")
@click.option("--name", required=True, help="Its system, e.g. igate: the connector is igate-h29.")
@click.option("--vhost", default=None, help="Default: BUS_AMQP_URL's virtual host.")
@click.option(
    "--management-url",
    envvar="BUS_MANAGEMENT_URL",
    show_envvar=True,
    default=None,
    metavar="URL",
    help="The broker's management API, with an administrator's credentials. Default:"
    " BUS_AMQP_URL's host and credentials, port 15672.",
)
@_keys_file
@_secrets
@click.option(
    "--rotate",
    is_flag=True,
    help="The connector exists: a new password, and a new key beside its others.",
)
@click.option(
    "--units-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Your deployment's table of units (unit,name,kind), if not the packaged one.",
)
def connector(
    unit: str,
    name: str,
    vhost: str | None,
    management_url: str | None,
    keys_file: Path | None,
    secrets_dir: Path,
    algorithm: str,
    rotate: bool,
    units_file: Path | None,
) -> None:
    """A connector's broker user, password and signing key.

    The user may publish to dossier.events under its unit's routing keys only, and do
    nothing else; its password and the private key go to files, the public key to the key
    registry, bound to the connector, its unit and its user."""
    from bus.management import Management, management_url_for, vhost_of
    from bus.provision import CONFIGURE, READ, WRITE, connector_amqp_url, provision_connector
    from bus.provision import topic_write as topic

    settings, registry = _settings(keys_file)
    amqp_url = settings.amqp_url.get_secret_value()
    with _reported(), Management(management_url or management_url_for(amqp_url)) as api:
        account = provision_connector(
            api,
            registry,
            secrets_dir,
            unit=unit,
            name=name,
            vhost=vhost or vhost_of(amqp_url),
            algorithm=cast("Algorithm", algorithm),
            rotate=rotate,
            units_file=units_file,
        )
    user, done = account.connector, "made" if account.created else "given a new password"
    click.echo(f"connector {user} of unit {account.unit}: broker user {done}")
    click.echo(
        f"  virtual host {account.vhost!r}: configure {CONFIGURE}  write {WRITE}  read {READ}"
    )
    click.echo(f"  topic dossier.events: write {topic(account.unit)}  read ^$")
    password = account.password_file.resolve()
    click.echo(f"  broker password file: {password}")
    _key_lines(account.signing, registry)
    click.echo(f"In its config file, [connector] table (its agency code ends in {account.unit}):")
    click.echo(f'  name = "{user}"')
    click.echo("In its environment:")
    click.echo(f'  BUS_AMQP_URL="{connector_amqp_url(amqp_url, user, account.vhost)}"')
    click.echo(f"  BUS_AMQP_PASSWORD_FILE={password}")
    _env_lines(account.signing)
    if not account.created:
        click.echo("The old password is refused from the connector's next connection on.")


@provision.command("rotate-key")
@click.option("--name", required=True, help="The connector, as `provision connector` named it.")
@_keys_file
@_secrets
def rotate_key(keys_file: Path | None, name: str, secrets_dir: Path, algorithm: str) -> None:
    """A new signing key for a connector, valid beside its others until they are retired."""
    from bus.provision import rotate_key as rotate

    _, registry = _settings(keys_file)
    with _reported():
        new = rotate(registry, secrets_dir, name, cast("Algorithm", algorithm))
    click.echo(f"connector {name}: a new signing key")
    _key_lines(new, registry)
    click.echo("In its environment (and signing_key_id in its config file, if it sets one):")
    _env_lines(new)


@provision.command("retire-key")
@click.argument("key_id")
@_keys_file
def retire_key(keys_file: Path | None, key_id: str) -> None:
    """Retire a key: what it signs is refused (dead-lettered, reason signature)."""
    from bus.provision import retire_key as retire

    _, registry = _settings(keys_file)
    with _reported():
        key, active, already = retire(registry, key_id)
    click.echo(f"key {key_id} of connector {key.connector}: {'already ' if already else ''}retired")
    if active:
        click.echo(f"  still valid: {', '.join(other.key_id for other in active)}")
    else:
        click.secho(
            f"  {key.connector} has no valid key left: its events are refused until"
            f" `bus provision rotate-key --name {key.connector}`",
            fg="yellow",
        )


def _settings(keys_file: Path | None) -> tuple[Settings, Path]:
    from bus.settings import Settings

    settings = Settings()
    registry = keys_file or settings.verify_keys_file
    if registry is None:
        raise click.UsageError("no key registry: give --keys-file, or set BUS_VERIFY_KEYS_FILE")
    return settings, registry


def _key_lines(new: NewKey, registry: Path) -> None:
    key = new.key
    click.echo(f"  signing key {key.key_id} ({key.algorithm}), registered in {registry}")
    click.echo(f"  signing key file: {new.file.resolve()}")
    if new.others:
        ids = ", ".join(other.key_id for other in new.others)
        click.echo(f"  still valid: {ids}; once the connector signs with the new key:")
        click.echo("    " + "; ".join(f"bus provision retire-key {o.key_id}" for o in new.others))
    click.echo("Hand the files (mode 0600) to the connector's team by a safe way; delete these.")


def _env_lines(new: NewKey) -> None:
    click.echo(f"  BUS_SIGNING_KEY_FILE={new.file.resolve()}")
    click.echo(f"  BUS_SIGNING_KEY_ID={new.key.key_id}")


@contextmanager
def _reported() -> Iterator[None]:
    """What goes wrong is one line and exit status 1."""
    from bus.errors import OperatorError
    from bus.management import ManagementError

    try:
        yield
    except (OperatorError, ManagementError, OSError) as error:
        raise click.ClickException(str(error)) from None
