"""docs/compose.yml (two gateway instances on one PostgreSQL) is valid YAML and consistent with
what it runs: the Dockerfile it builds, the variables the entrypoint reads, the ports the
image exposes, the secrets it mounts. (No compose engine runs here; this reads the file the
way one would.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

COMPOSE = REPO / "docs" / "compose.yml"
GATEWAYS = ("gateway-1", "gateway-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _entrypoint_variables() -> set[str]:
    return set(
        re.findall(r"\$\{?(CERTGATE_[A-Z_]+)", (REPO / "conf/docker-entrypoint.sh").read_text())
    )


def _exposed_ports() -> set[int]:
    (line,) = [
        ln for ln in (REPO / "Dockerfile").read_text().splitlines() if ln.startswith("EXPOSE")
    ]
    return {int(p) for p in line.split()[1:]}


def test_two_gateways_and_one_database(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"db", *GATEWAYS}
    assert compose["services"]["db"]["image"].startswith("postgres:")


def test_both_gateways_build_this_dockerfile_and_share_one_volume(compose: dict[str, Any]) -> None:
    for name in GATEWAYS:
        service = compose["services"][name]
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            REPO / "Dockerfile"
        )
        assert service["volumes"] == ["certgate-data:/data"]
    assert "certgate-data" in compose["volumes"]


def test_environment_is_what_the_entrypoint_reads(compose: dict[str, Any]) -> None:
    known = _entrypoint_variables()
    for name in GATEWAYS:
        env = compose["services"][name]["environment"]
        assert set(env) <= known, set(env) - known
        # secrets reach certgate as files, never as values in the environment
        assert "CERTGATE_CA_PASSPHRASE" not in env and "CERTGATE_DATABASE_URL" not in env
        assert env["CERTGATE_EXTERNAL_URL"].startswith("https://")


def test_secret_files_are_mounted_secrets(compose: dict[str, Any]) -> None:
    defined = compose["secrets"]
    for name in (*GATEWAYS, "db"):
        service = compose["services"][name]
        mounted = set(service.get("secrets", []))
        assert mounted <= set(defined)
        for key, value in service["environment"].items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/") and value.rsplit("/", 1)[1] in mounted
    assert all("file" in s for s in defined.values())


def test_ports_are_the_image_ports_on_distinct_host_ports(compose: dict[str, Any]) -> None:
    exposed, host_ports = _exposed_ports(), []
    for name in GATEWAYS:
        mapped = [str(p).split(":") for p in compose["services"][name]["ports"]]
        assert {int(container) for _, container in mapped} == exposed
        host_ports += [int(host) for host, _ in mapped]
    assert len(host_ports) == len(set(host_ports))


def test_second_gateway_waits_for_the_first_and_both_for_the_database(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in GATEWAYS:
        assert services[name]["depends_on"]["db"] == {"condition": "service_healthy"}
        assert services[name]["healthcheck"]["test"] == [
            "CMD", "certgate-entrypoint", "healthcheck",
        ]  # fmt: skip
    # one instance writes the site and creates the CA; the other must not race it
    assert services["gateway-2"]["depends_on"]["gateway-1"] == {"condition": "service_healthy"}
    assert "gateway-2" not in services["gateway-1"].get("depends_on", {})
    assert "healthcheck" in services["db"]
