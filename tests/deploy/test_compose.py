"""docker-compose.yml and the Dockerfile, read without Docker: every service runs a `bus`
command that exists, is health-checked if it keeps running, starts after the topology, is
configured by settings that exist, and is given files that exist; the cluster profile makes
one cluster; the sample connector can read its sample system and be verified by the sync."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from deploy_support import REPO, compose, environment, is_setting, resolve, words

from bus.probes import CONNECTOR_METRICS_PORT, SYNC_METRICS_PORT
from bus.signing import KeyRing, Signer
from connectors.config import load_config, make_source
from connectors.mapping import RecordMapping
from connectors.source import PollSource

SERVICES: dict[str, dict[str, Any]] = compose()["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text("utf-8")
PLUGINS = {"rabbitmq_management", "rabbitmq_prometheus", "rabbitmq_consistent_hash_exchange"}


def bus_argv(service: dict[str, Any]) -> list[str] | None:
    """The arguments after `bus` the service runs, or None when it runs something else."""
    entrypoint = words(service.get("entrypoint"))
    if entrypoint:
        return [*entrypoint[1:], *words(service.get("command"))] if entrypoint[0] == "bus" else None
    if service.get("build") is None:  # another image, with its own entrypoint
        return None
    assert re.search(r'^ENTRYPOINT \["bus"\]$', DOCKERFILE, re.MULTILINE)
    return words(service.get("command"))


def bus_services() -> dict[str, tuple[str, ...]]:
    """Each service that runs `bus`, by name: the path of the command it runs."""
    found = {}
    for name, service in SERVICES.items():
        argv = bus_argv(service)
        if argv is not None:
            found[name] = resolve(argv)
    return found


def named(path: tuple[str, ...]) -> str:
    (name,) = [name for name, runs in bus_services().items() if runs == path]
    return name


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source on the host, target in the container) of each bind mount; named volumes are
    the volumes' business."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def rabbitmq_nodes() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in SERVICES.items()
        if str(service.get("image", "")).startswith("rabbitmq:")
    }


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative to the repository) out of the build
    context: the last pattern matching it, or a folder holding it, decides."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            ignored = not negated
    return ignored


def healthcheck_port(service: dict[str, Any]) -> int | None:
    test = " ".join(words(service["healthcheck"]["test"]))
    found = re.search(r"https?://127\.0\.0\.1:(\d+)/readyz", test)
    return int(found.group(1)) if found else None


def test_every_bus_service_runs_a_command_of_the_cli_with_options_it_has() -> None:
    # resolve() fails the test on a command, option or argument that `bus` does not have.
    assert sorted(bus_services().values()) == sorted(
        [
            ("topology", "apply"),
            ("portal-sim",),
            ("sync", "run"),
            ("console",),
            ("connector", "run"),
        ]
    )


def test_every_service_that_keeps_running_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        assert "restart" in service, f"{name}: say whether it keeps running (restart)"
        if service["restart"] == "no":
            continue
        test = words(service.get("healthcheck", {}).get("test"))
        assert test, f"{name} has no health check"
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test[0]} is no health check"


def test_bus_services_are_checked_on_their_readiness_endpoint_where_they_serve_it() -> None:
    probes = {
        ("sync", "run"): SYNC_METRICS_PORT,
        ("connector", "run"): CONNECTOR_METRICS_PORT,
        ("portal-sim",): 8700,
        ("console",): 8780,
    }
    for name, path in bus_services().items():
        service = SERVICES[name]
        if service["restart"] == "no":
            continue
        port = healthcheck_port(service)
        assert port == probes[path], f"{name}: /readyz is on {probes[path]}, not {port}"
        if path == ("portal-sim",):
            argv = words(service["command"])
            assert argv[argv.index("--port") + 1] == str(port)
            assert argv[argv.index("--host") + 1] == "0.0.0.0"
        elif path == ("console",):
            assert words(service["command"])[1:3] == ["--host", "0.0.0.0"]
        else:  # the probe server binds BUS_METRICS_HOST: the image sets it for containers
            assert re.search(r"^ENV BUS_METRICS_HOST=0\.0\.0\.0$", DOCKERFILE, re.MULTILINE)
        assert f"127.0.0.1:{port}:{port}" in service.get("ports", []), f"{name}: not published"


def test_services_that_use_the_broker_wait_for_the_topology_to_be_applied() -> None:
    topology = named(("topology", "apply"))
    assert SERVICES[topology]["restart"] == "no"
    assert SERVICES[topology]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    users = [
        name
        for name, service in SERVICES.items()
        if "BUS_AMQP_URL" in environment(service) and name != topology
    ]
    assert set(users) >= {named(("sync", "run")), named(("console",)), named(("connector", "run"))}
    for name in users:
        waits = (SERVICES[name].get("depends_on") or {}).get(topology)
        assert waits == {"condition": "service_completed_successfully"}, name


def test_the_cluster_profile_has_three_rabbitmq_nodes_with_their_own_names_and_one_cookie() -> None:
    nodes = {n: s for n, s in rabbitmq_nodes().items() if "cluster" in s.get("profiles", [])}
    assert len(nodes) == 3
    hostnames = {node["hostname"] for node in nodes.values()}
    assert len(hostnames) == 3
    cookies = {environment(node).get("RABBITMQ_ERLANG_COOKIE") for node in nodes.values()}
    assert len(cookies) == 1  # one cookie for all
    assert cookies != {None}
    data = {
        volume.split(":")[0]
        for node in nodes.values()
        for volume in node["volumes"]
        if volume.split(":")[1] == "/var/lib/rabbitmq"
    }
    assert len(data) == 3  # each node its own data
    configs = {
        source
        for node in nodes.values()
        for source, target in bind_mounts(node)
        if target.startswith("/etc/rabbitmq/conf.d/")
    }
    assert len(configs) == 1
    conf = (REPO / configs.pop()).read_text("utf-8")
    assert re.search(r"^cluster_formation\.peer_discovery_backend = classic_config$", conf, re.M)
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = (\S+)$", conf, re.M)
    assert sorted(listed) == sorted(f"rabbit@{hostname}" for hostname in hostnames)
    # The nodes are not needed without their profile: nothing may require them.
    for name, service in SERVICES.items():
        for node in nodes:
            waits = (service.get("depends_on") or {}).get(node)
            assert waits is None or waits.get("required") is False, f"{name} requires {node}"


def test_every_rabbitmq_node_runs_3_13_with_the_plugins_the_bus_needs() -> None:
    assert len(rabbitmq_nodes()) == 4
    for name, node in rabbitmq_nodes().items():
        assert node["image"] == "rabbitmq:3.13-management", name
        (plugins,) = [s for s, t in bind_mounts(node) if t == "/etc/rabbitmq/enabled_plugins"]
        text = (REPO / plugins).read_text("utf-8").strip()
        assert re.fullmatch(r"\[[a-z_,\s]*\]\.", text), f"{plugins} is not an Erlang list"
        assert set(re.findall(r"[a-z_]+", text)) >= PLUGINS


def test_every_bus_variable_set_is_a_setting() -> None:
    variables = {name for service in SERVICES.values() for name in environment(service)}
    variables |= set(re.findall(r"^ENV (BUS_\w+)=", DOCKERFILE, re.MULTILINE))
    bus_variables = {name for name in variables if name.startswith("BUS_")}
    assert bus_variables >= {"BUS_AMQP_URL", "BUS_AMQP_PASSWORD_FILE", "BUS_SIGNING_KEY_FILE"}
    assert sorted(name for name in bus_variables if not is_setting(name)) == []


def test_every_secret_file_a_service_is_pointed_at_is_one_it_is_given() -> None:
    defined = compose()["secrets"]
    for name, service in SERVICES.items():
        given = set(service.get("secrets", []))
        for variable, value in environment(service).items():
            if value is not None and value.startswith("/run/secrets/"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in given, f"{name}: {variable} names a secret it is not given"
        assert given <= set(defined), f"{name}: undefined secrets {given - set(defined)}"


def test_every_file_the_compose_file_mounts_or_builds_from_exists() -> None:
    sources = [source for service in SERVICES.values() for source, _ in bind_mounts(service)]
    sources += [secret["file"] for secret in compose()["secrets"].values()]
    assert sources
    for source in sources:
        assert source.startswith("./"), f"{source}: a path of this repository, please"
        assert (REPO / source).is_file(), f"{source} does not exist"
    contexts = {service["build"] for service in SERVICES.values() if "build" in service}
    assert contexts == {"."}
    assert (REPO / "Dockerfile").is_file()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE)
    for source in (word for line in copied for word in line.split()):
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not dockerignored(source), f"{source} is copied, but .dockerignore drops it"


def test_the_dockerignore_reader_keeps_the_sources_and_drops_the_rest() -> None:
    assert not dockerignored("bus")
    assert not dockerignored("pyproject.toml")
    assert dockerignored(".venv")
    assert dockerignored("tests")
    assert dockerignored("bus/__pycache__")


@pytest.fixture(scope="module")
def sample_connector() -> dict[str, Any]:
    """The connector service, with the config file it is given (a path of the repository)
    and where its relative paths land in the container."""
    name = named(("connector", "run"))
    service = SERVICES[name]
    config_in_container = words(service["command"])[-1]
    (config,) = [s for s, t in bind_mounts(service) if t == config_in_container]
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", DOCKERFILE, re.MULTILINE)[-1:]
    return {"service": service, "config": REPO / config, "workdir": PurePosixPath(workdir)}


def test_the_sample_system_exports_files_the_sample_connector_reads_and_maps(
    sample_connector: dict[str, Any], tmp_path: Path
) -> None:
    exports = SERVICES["h31-exports"]
    script, folder = words(exports["entrypoint"])[1], words(exports["command"])[0]
    config = load_config(sample_connector["config"])
    # The folder the system writes is the one the connector reads, relative to its workdir.
    assert PurePosixPath(folder) == sample_connector["workdir"] / config.source["folder"]
    (source,) = [s for s, t in bind_mounts(exports) if t == script]
    subprocess.run(
        [sys.executable, REPO / source, tmp_path, "--dossiers", "4", "--every", "0"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    exported = sorted(tmp_path.iterdir())
    assert exported
    # Written whole and renamed, so nothing to wait for (the config waits a second).
    here = config.model_copy(
        update={"source": {**config.source, "folder": str(tmp_path), "settle_seconds": 0}}
    )
    source = make_source(here)
    assert isinstance(source, PollSource)
    mapping = RecordMapping(here)

    async def read_every_file() -> int:
        records = 0
        await source.open()
        try:
            while (batch := await source.fetch(None, 500)).records or not batch.done:
                for record in batch.records:
                    mapping.event(record, None)  # a MappingError fails the test
                records += len(batch.records)
                await source.committed(batch)
        finally:
            await source.close()
        return records

    assert asyncio.run(read_every_file()) >= len(exported)  # none of them empty
    assert not any(path.exists() for path in exported)  # each one read, and moved to done/


def test_the_sample_connector_signs_with_a_key_the_sync_service_accepts_for_it(
    sample_connector: dict[str, Any],
) -> None:
    config = load_config(sample_connector["config"])
    connector_env = environment(sample_connector["service"])
    sync_env = environment(SERVICES[named(("sync", "run"))])
    secrets = {f"/run/secrets/{name}": REPO / s["file"] for name, s in compose()["secrets"].items()}
    key_id = connector_env["BUS_SIGNING_KEY_ID"]
    assert key_id is not None
    key_file = secrets[connector_env["BUS_SIGNING_KEY_FILE"] or ""]
    signer = Signer.from_text(key_id, key_file.read_text("utf-8").strip())
    registered = KeyRing.load(secrets[sync_env["BUS_VERIFY_KEYS_FILE"] or ""]).get(key_id)
    assert registered is not None
    assert registered.material == signer.verify_key(config.connector.name).material
    assert (registered.connector, registered.unit) == (config.connector.name, config.unit)
    assert registered.user == "guest"  # the compose broker's user the connector logs in as
    assert "amqp://guest@" in (connector_env["BUS_AMQP_URL"] or "")
