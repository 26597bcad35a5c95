"""`bus provision` end to end, on the real broker: the connector's user exists with exactly
the least privileges, its secrets are in files only its owner can read, the key registry
holds its public key bound to connector, unit and user, and the output names every file
and variable the team needs but no secret. Keys rotate (old and new valid) and retire."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts_support import as_user, unique
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker import management
from bus.broker import BrokerUnavailable, Connection
from bus.cli import main
from bus.management import Management, vhost_of
from bus.message import Message
from bus.provision import connector_name
from bus.settings import Settings
from bus.signing import KeyRing, Signer
from bus.topology import EVENTS_EXCHANGE


@pytest.fixture
def users(management_url: str) -> Iterator[list[str]]:
    """Names of the broker users a test makes: deleted after it, however it ends."""
    made: list[str] = []
    yield made
    with Management(management_url) as api:
        for name in made:
            api.delete_user(name)


def provision(vhost: str, tmp_path: Path, *args: str, **env: str | None) -> Result:
    """`bus provision ARGS` as an operator runs it: BUS_AMQP_URL names the vhost, with an
    administrator's credentials; the registry is BUS_VERIFY_KEYS_FILE."""
    values = {"BUS_AMQP_URL": vhost, "BUS_VERIFY_KEYS_FILE": str(tmp_path / "keys.json")}
    return CliRunner().invoke(main, ["provision", *args], env={**values, **env})


def secrets_dir(tmp_path: Path) -> list[str]:
    return ["--secrets-dir", str(tmp_path / "secrets")]


def lines_starting(output: str, start: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(start)]


def env_value(output: str, name: str) -> str:
    """What a shell gets in `name` from the line of the output that sets it."""
    [line] = lines_starting(output, f"{name}=")
    shell = subprocess.run(
        ["bash", "-c", f'{line}; printf %s "${name}"'], capture_output=True, text=True, check=True
    )
    return shell.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def logs_in(amqp_url: str) -> bool:
    async def attempt() -> bool:
        connection = Connection(amqp_url, name="test-login", max_delay=0.5)
        try:
            await connection.start(timeout=3)  # a refused login is retried until then
        except BrokerUnavailable:
            return False
        await connection.close()
        return True

    return asyncio.run(attempt())


def as_the_sync_service_receives(signer: Signer, connector: str, user: str) -> Message:
    body = b'{"event": "any"}'
    message = Message(
        body=body,
        exchange=EVENTS_EXCHANGE,
        routing_key="H29.status_changed",
        headers={},
        redelivered=False,
        delivery_tag=1,
        message_id="e-1",
        type="status_changed",
        app_id=connector,
        user_id=user,
        timestamp=1_750_000_000,
    )
    message.headers.update(signer.sign(body, "e-1", "status_changed", connector, 1_750_000_000))
    return message


def test_provisioning_a_connector_makes_a_least_privileged_user_secret_files_and_a_registered_key(
    vhost: str, management_url: str, tmp_path: Path, users: list[str]
) -> None:
    system = unique()
    users.append(name := connector_name(system, "H29"))

    result = provision(vhost, tmp_path, "connector", "--unit", "H29", "--name", system,
                       *secrets_dir(tmp_path))  # fmt: skip

    assert result.exit_code == 0, result.output
    where = vhost_of(vhost)
    assert management(management_url, "GET", f"/api/users/{name}")["tags"] == []  # type: ignore[index]
    assert management(management_url, "GET", f"/api/users/{name}/permissions") == [
        {"user": name, "vhost": where, "configure": "^$", "write": "^dossier\\.events$",
         "read": "^$"}
    ]  # fmt: skip
    assert management(management_url, "GET", f"/api/users/{name}/topic-permissions") == [
        {"user": name, "vhost": where, "exchange": "dossier.events", "write": "^H29\\.",
         "read": "^$"}
    ]  # fmt: skip

    password_file = tmp_path / "secrets" / f"{name}.broker-password"
    key_id = env_value(result.output, "BUS_SIGNING_KEY_ID")
    key_file = Path(env_value(result.output, "BUS_SIGNING_KEY_FILE"))
    assert key_file == (tmp_path / "secrets" / f"{key_id}.signing-key").resolve()
    assert (mode(password_file), mode(key_file)) == (0o600, 0o600)
    password, key_text = password_file.read_text().strip(), key_file.read_text().strip()
    assert len(password) >= 40

    # The registry holds the public key only, bound to the connector, its unit, its user.
    [entry] = json.loads((tmp_path / "keys.json").read_text())["keys"]
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key_text.split(":")[1]))
    public = base64.b64encode(private.public_key().public_bytes_raw()).decode()
    assert entry == {"id": key_id, "connector": name, "alg": "ed25519", "public_key": public,
                     "unit": "H29", "user": name}  # fmt: skip
    signer = Signer.from_text(key_id, key_text)
    KeyRing.load(tmp_path / "keys.json").verify(as_the_sync_service_receives(signer, name, name))

    # What is printed names the files and the variables, never the secrets themselves.
    assert password not in result.output
    assert key_text.split(":")[1] not in result.output
    assert str(password_file.resolve()) in result.output
    assert lines_starting(result.output, 'name = "') == [f'name = "{name}"']
    connector = Settings(
        amqp_url=env_value(result.output, "BUS_AMQP_URL"),
        amqp_password_file=env_value(result.output, "BUS_AMQP_PASSWORD_FILE"),
    )
    assert password not in connector.amqp_url.get_secret_value()
    assert connector.broker_url() == as_user(vhost, name, password)
    assert logs_in(connector.broker_url())


def test_provisioning_an_existing_connector_fails_unless_told_to_rotate_its_password_and_key(
    vhost: str, management_url: str, tmp_path: Path, users: list[str]
) -> None:
    system = unique()
    users.append(name := connector_name(system, "H29"))
    args = ["connector", "--unit", "H29", "--name", system, *secrets_dir(tmp_path)]
    first = provision(vhost, tmp_path, *args)
    old_password = (tmp_path / "secrets" / f"{name}.broker-password").read_text().strip()
    old_key = env_value(first.output, "BUS_SIGNING_KEY_ID")

    again = provision(vhost, tmp_path, *args)

    assert again.exit_code == 1
    assert f"connector '{name}' is already provisioned (broker user '{name}')" in again.output
    assert "--rotate" in again.output
    assert logs_in(as_user(vhost, name, old_password))  # untouched
    assert len(json.loads((tmp_path / "keys.json").read_text())["keys"]) == 1

    rotated = provision(vhost, tmp_path, *args, "--rotate")

    assert rotated.exit_code == 0, rotated.output
    new_password = (tmp_path / "secrets" / f"{name}.broker-password").read_text().strip()
    assert new_password != old_password
    assert not logs_in(as_user(vhost, name, old_password))
    assert logs_in(as_user(vhost, name, new_password))
    new_key = env_value(rotated.output, "BUS_SIGNING_KEY_ID")
    ring = KeyRing.load(tmp_path / "keys.json")
    assert [key.key_id for key in ring.of_connector(name) if not key.retired] == [old_key, new_key]
    assert f"bus provision retire-key {old_key}" in rotated.output


def test_rotate_key_adds_a_valid_key_beside_the_old_and_retire_key_refuses_the_old_one(
    vhost: str, management_url: str, tmp_path: Path, users: list[str]
) -> None:
    system = unique()
    users.append(name := connector_name(system, "H29"))
    made = provision(vhost, tmp_path, "connector", "--unit", "H29", "--name", system,
                     *secrets_dir(tmp_path))  # fmt: skip
    old = Signer.from_text(
        env_value(made.output, "BUS_SIGNING_KEY_ID"),
        Path(env_value(made.output, "BUS_SIGNING_KEY_FILE")).read_text().strip(),
    )

    rotated = provision(vhost, tmp_path, "rotate-key", "--name", name, *secrets_dir(tmp_path),
                        "--algorithm", "hmac-sha256")  # fmt: skip

    assert rotated.exit_code == 0, rotated.output
    key_file = Path(env_value(rotated.output, "BUS_SIGNING_KEY_FILE"))
    new = Signer.from_text(env_value(rotated.output, "BUS_SIGNING_KEY_ID"), key_file.read_text())
    assert new.algorithm == "hmac-sha256"
    assert mode(key_file) == 0o600
    assert mode(tmp_path / "keys.json") == 0o640  # it holds a secret now: not for all
    assert base64.b64encode(new.secret).decode() not in rotated.output
    ring = KeyRing.load(tmp_path / "keys.json")
    for signer in (old, new):
        ring.verify(as_the_sync_service_receives(signer, name, name))
    assert {(key.unit, key.user) for key in ring.of_connector(name)} == {("H29", name)}

    retired = provision(vhost, tmp_path, "retire-key", old.key_id)

    assert retired.exit_code == 0, retired.output
    assert f"still valid: {new.key_id}" in retired.output
    ring = KeyRing.load(tmp_path / "keys.json")
    ring.verify(as_the_sync_service_receives(new, name, name))
    with pytest.raises(Exception, match="is retired"):
        ring.verify(as_the_sync_service_receives(old, name, name))
    last = provision(vhost, tmp_path, "retire-key", new.key_id)
    assert "has no valid key left" in last.output


@pytest.mark.parametrize(
    ("unit", "said"),
    [
        ("H99", "unit H99 is not in the units table"),
        ("29", "'29' is not a unit code"),
        ("HCM", "'HCM' is not a unit code"),
    ],
)
def test_a_unit_the_units_table_does_not_know_is_refused_and_nothing_is_made(
    vhost: str, management_url: str, tmp_path: Path, users: list[str], unit: str, said: str
) -> None:
    system = unique()
    users.append(f"{system}-{unit.lower()}")

    result = provision(vhost, tmp_path, "connector", "--unit", unit, "--name", system,
                       *secrets_dir(tmp_path))  # fmt: skip

    assert result.exit_code == 1
    assert said in result.output
    with Management(management_url) as api:
        assert api.find_user(f"{system}-{unit.lower()}") is None
    assert not (tmp_path / "keys.json").exists()
    assert not (tmp_path / "secrets").exists()


def test_a_deployments_own_units_table_admits_its_units(
    vhost: str, management_url: str, tmp_path: Path, users: list[str]
) -> None:
    system = unique()
    users.append(name := connector_name(system, "G01"))
    table = tmp_path / "units.csv"
    table.write_text("unit,name,kind\nG01,Bộ Công an,ministry\n", encoding="utf-8")

    result = provision(vhost, tmp_path, "connector", "--unit", "G01", "--name", system,
                       "--units-file", str(table), *secrets_dir(tmp_path))  # fmt: skip

    assert result.exit_code == 0, result.output
    topic = management(management_url, "GET", f"/api/users/{name}/topic-permissions")
    assert [entry["write"] for entry in topic] == ["^G01\\."]  # type: ignore[index, union-attr]


def test_without_a_key_registry_the_command_says_how_to_name_one(
    vhost: str, tmp_path: Path
) -> None:
    result = provision(vhost, tmp_path, "connector", "--unit", "H29", "--name", "igate",
                       BUS_VERIFY_KEYS_FILE=None)  # fmt: skip

    assert result.exit_code == 2
    assert "give --keys-file, or set BUS_VERIFY_KEYS_FILE" in result.output


def test_a_provisioned_connector_cannot_log_in_to_another_virtual_host(
    vhost: str, management_url: str, tmp_path: Path, users: list[str]
) -> None:
    system = unique()
    users.append(name := connector_name(system, "H29"))
    provision(vhost, tmp_path, "connector", "--unit", "H29", "--name", system,
              *secrets_dir(tmp_path))  # fmt: skip
    password = (tmp_path / "secrets" / f"{name}.broker-password").read_text().strip()

    default_vhost = vhost.rsplit("/", 1)[0] + "/%2F"

    assert logs_in(as_user(vhost, name, password))
    assert not logs_in(as_user(default_vhost, name, password))
