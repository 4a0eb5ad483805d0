"""``certgate init DIR`` writes a complete site (issue #15 item 1): every protocol on, the
templates, generated secrets in 0600 files referenced by ``file:``, the EST and CES bootstrap
accounts, and a gateway (data directory, database, CA); a second init refuses in one line and
changes nothing. One test installs the wheel outside the checkout and inits from there."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from tests.helpers import REPO, certgate

SECRETS = (
    "scep-challenge",
    "scep-legacy-challenge",
    "est-bootstrap.password",
    "ces-bootstrap.password",
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_site_with_every_protocol_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert main(["init", str(site), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    config = load_config(site / "certgate.toml")
    assert out["site"]["config"] == str(site / "certgate.toml")
    assert {n for n, t in config.protocols.items() if t.get("enabled")} == {
        "acme",
        "est",
        "scep",
        "wstep",
    }
    assert config.server.tls is not None and config.server.plain is not None
    assert config.server.external_url == "https://localhost:8443"
    assert config.server.device_url == "http://localhost:8080"
    assert config.server.host == config.server.plain.host == "127.0.0.1"  # loopback only
    assert config.data_dir == site / "data"
    assert (site / "data" / "certgate.db").is_file() and (site / "data" / "ca").is_dir()
    assert out["root_ca_file"] == str(site / "data" / "root-ca.pem")
    names = {p.stem for p in (site / "templates").glob("*.toml")}
    assert {"tls-server", "acme-tls", "device", "scep-device", "scep-ra"} <= names
    assert "[wstep]" in (site / "certgate.reference.toml").read_text()
    # secrets: a 0700 directory of 0600 files, each one a fresh random value, referenced by
    # file: (the SCEP challenge) and never written into the configuration itself
    assert _mode(site / "secrets") == 0o700
    values = set()
    for name in SECRETS:
        path = site / "secrets" / name
        assert _mode(path) == 0o600, name
        values.add(path.read_text().strip())
    assert len(values) == len(SECRETS) and all(len(v) >= 20 for v in values)
    text = (site / "certgate.toml").read_text()
    assert 'challenge_password = "file:secrets/scep-challenge"' in text
    assert not any(v in text for v in values)
    # the downgrade-prone legacy switch only on an endpoint of its own, with its own challenge
    devices, legacy = config.protocols["scep"]["endpoints"].values()
    assert devices["challenge_password"] == "file:secrets/scep-challenge"
    assert devices["template"] == "device" and not devices.get("legacy_des")
    assert legacy["challenge_password"] == "file:secrets/scep-legacy-challenge"
    assert legacy["legacy_des"] is True


def test_init_makes_the_bootstrap_accounts_with_the_generated_passwords(tmp_path: Path) -> None:
    site = tmp_path / "site"
    certgate("init", str(site), check=True)
    cfg = str(site / "certgate.toml")
    est = json.loads(certgate("est", "user", "list", "--json", "-c", cfg, check=True).stdout)
    assert [u["username"] for u in est] == ["est-bootstrap"]
    ces = json.loads(certgate("wstep", "user", "list", "--json", "-c", cfg, check=True).stdout)
    assert [u["username"] for u in ces] == ["ces-bootstrap"]


def test_init_again_refuses_in_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert main(["init", str(site)]) == 0
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file() and "data" not in p.parts}
    capsys.readouterr()
    assert main(["init", str(site)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a site already" in err, err
    assert str(site / "certgate.toml") in err
    after = {p: p.read_bytes() for p in site.rglob("*") if p.is_file() and "data" not in p.parts}
    assert after == before


def test_init_refuses_to_overwrite_a_stray_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    (site / "secrets").mkdir(parents=True)
    (site / "secrets" / "scep-challenge").write_text("mine\n")
    assert main(["init", str(site)]) == 2
    err = capsys.readouterr().err.strip()
    assert "scep-challenge: exists" in err and len(err.splitlines()) == 1
    assert (site / "secrets" / "scep-challenge").read_text() == "mine\n"
    assert not (site / "certgate.toml").exists()


def test_init_site_options_reach_the_configuration(tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert (
        main(
            [
                "init",
                str(site),
                "--host",
                "0.0.0.0",
                "--port",
                "9001",
                "--plain-port",
                "9002",
                "--est-port",
                "9003",
                "--name",
                "gw.example.test",
                "--external-url",
                "https://gw.example.test",
            ]
        )
        == 0
    )
    config = load_config(site / "certgate.toml")
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9001)
    assert config.server.external_url == "https://gw.example.test"
    assert config.server.device_url == "http://gw.example.test:9002"
    assert config.server.tls is not None and config.server.tls.names == ("gw.example.test",)
    assert config.protocols["est"]["port"] == 9003


def test_init_without_dir_keeps_its_old_behaviour(tmp_path: Path) -> None:
    cfg = tmp_path / "certgate.toml"
    cfg.write_text(
        f'[data]\ndir = "{tmp_path / "data"}"\n[policy]\ntemplates_dir = "{REPO}/conf/templates"\n'
    )
    assert main(["init", "-c", str(cfg)]) == 0
    assert (tmp_path / "data" / "certgate.db").is_file()
    assert main(["init", "-c", str(cfg)]) == 0  # opening an existing gateway is harmless
    assert not (tmp_path / "secrets").exists()


@pytest.mark.interop
def test_init_works_from_an_installed_wheel_outside_the_checkout(tmp_path: Path) -> None:
    """The site comes from package data: a wheel installed away from the source tree (no
    conf/ anywhere near) writes the same site."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("certgate-*.whl")
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("CERTGATE_CONFIG", None)
    where = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        capture_output=True, text=True, cwd=work, env=env, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "init", "site", "--json"],
        capture_output=True, text=True, cwd=work, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    site = work / "site"
    assert load_config(site / "certgate.toml").protocols["acme"]["enabled"] is True
    shipped = {p.name for p in (target / "gateway" / "site" / "templates").glob("*.toml")}
    assert shipped and shipped <= {p.name for p in (site / "templates").glob("*.toml")}
    assert json.loads(proc.stdout)["root_ca_sha256"]


def test_site_options_without_dir_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "certgate.toml"
    cfg.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    assert main(["init", "-c", str(cfg), "--port", "9000"]) == 2
    assert "--port only apply with a site DIR" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
