"""deploy/systemd/bus-connector@.service, read as systemd reads it: one connector per instance,
a command the CLI has, only the bus's own settings, its secrets as credentials, an unprivileged
user in a hardened sandbox that may write its outbox and little else."""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from pathlib import Path

from deploy_support import REPO, is_setting, resolve

UNIT = REPO / "deploy" / "systemd" / "bus-connector@.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "connector.env.example"


def unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """Section → key → every value it is given, in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if found := re.fullmatch(r"\[(\w+)\]", line):
            section = found.group(1)
            continue
        key, sep, value = line.partition("=")
        assert section, f"{path.name}: {raw!r} comes before any section"
        assert sep, f"{path.name}: {raw!r} is not a setting"
        sections[section][key.strip()].append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return unit()["Service"]


def variables() -> dict[str, str]:
    """Environment= assignments: NAME=VALUE, several to a line as systemd allows."""
    pairs = [word.partition("=") for line in service()["Environment"] for word in shlex.split(line)]
    return {name: value for name, _, value in pairs}


def test_the_unit_runs_bus_connector_run_on_the_config_of_its_instance() -> None:
    (exec_start,) = service()["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/bin/bus")
    assert resolve(argv[1:]) == ("connector", "run")  # fails on anything `bus` does not have
    assert argv[-1] == "/etc/dossier-bus/%i.toml"
    assert service()["EnvironmentFile"] == ["/etc/dossier-bus/%i.env"]


def test_the_unit_and_its_environment_file_set_only_settings_of_the_bus() -> None:
    assert variables()
    assert sorted(name for name in variables() if not is_setting(name)) == []
    lines = ENV_EXAMPLE.read_text("utf-8").splitlines()
    example = [line.partition("=")[0] for line in lines if line and not line.startswith("#")]
    assert "BUS_AMQP_URL" in example
    assert sorted(name for name in example if not is_setting(name)) == []


def test_the_secrets_are_loaded_as_credentials_and_read_from_their_private_directory() -> None:
    credentials = dict(entry.split(":", 1) for entry in service()["LoadCredential"])
    assert set(credentials) == {"broker-password", "signing-key"}
    for source in credentials.values():
        assert source.startswith("/etc/dossier-bus/credentials/%i/")
    assert variables()["BUS_AMQP_PASSWORD_FILE"] == "%d/broker-password"
    assert variables()["BUS_SIGNING_KEY_FILE"] == "%d/signing-key"
    files = {value for name, value in variables().items() if name.endswith("_FILE")}
    assert files <= {f"%d/{name}" for name in credentials}  # no secret read from elsewhere


def test_the_connector_runs_unprivileged_restarts_on_failure_and_writes_only_its_outbox() -> None:
    settings = service()
    assert settings["User"] not in (["root"], ["0"], [])
    assert settings["Restart"] == ["on-failure"]
    assert settings["StateDirectory"] == ["dossier-bus/%i"]  # the outbox, kept across restarts
    assert settings["StateDirectoryMode"] == ["0700"]
    assert settings["ProtectSystem"] == ["strict"]  # everything else read-only
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["CapabilityBoundingSet"] == [""]
    assert all(path.startswith("-/var/spool/dossier-bus/%i") for path in settings["ReadWritePaths"])
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]
