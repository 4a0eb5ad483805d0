"""Commands open only what they need (issue #15 item 3): listings read the store of an existing
gateway without opening its CA or migrating its schema; what issues still opens the CA; the
generated-passphrase warning is the server's, not every command's; ``--json`` errors are JSON;
plug-in listings print tables with headers. In-process through ``main(argv)``."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from gateway.cli import EXIT_OK, EXIT_USAGE, main
from gateway.config import load_config
from gateway.server.wiring import build
from gateway.store.upgrade import alembic_config
from tests.helpers import csr_pem, make_csr, write_config

LISTINGS = [
    ["requests", "list"],
    ["certs", "list"],
    ["audit", "list"],
    ["est", "user", "list"],
    ["wstep", "user", "list"],
    ["acme", "eab", "list"],
    ["acme", "account", "list"],
]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path)
    assert main(["init", "-c", str(cfg)]) == EXIT_OK
    csr = tmp_path / "web.csr"
    csr.write_bytes(csr_pem(make_csr(dns=("www.example.test",))))
    assert main(["enroll", "-c", str(cfg), "-t", "tls-server", "--csr", str(csr)]) == EXIT_OK
    return cfg


def _db(cfg: Path) -> sqlite3.Connection:
    return sqlite3.connect(cfg.parent / "data" / "certgate.db")


@pytest.mark.parametrize("command", LISTINGS, ids=" ".join)
def test_listings_do_not_open_the_ca(
    cfg: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Without its passphrase the CA cannot be opened: what still works never opened it.
    (cfg.parent / "data" / "ca" / "passphrase").rename(cfg.parent / "passphrase.away")
    capsys.readouterr()
    assert main([*command, "-c", str(cfg)]) == EXIT_OK
    capsys.readouterr()
    assert main([*command, "-c", str(cfg), "--json"]) == EXIT_OK
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_issuing_still_opens_the_ca(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg.parent / "data" / "ca" / "passphrase").rename(cfg.parent / "passphrase.away")
    capsys.readouterr()
    csr = cfg.parent / "web.csr"
    assert main(["enroll", "-c", str(cfg), "-t", "tls-server", "--csr", str(csr)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "passphrase" in err and len(err.strip().splitlines()) == 1, err


def test_a_listing_never_migrates_an_older_schema(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The database one migration behind on a branch with two or more (as after an upgrade).
    script = ScriptDirectory.from_config(alembic_config())
    heads = [script.get_revision(h) for h in script.get_heads()]
    head = next(r for r in heads if r is not None and r.down_revision != "0001")
    with _db(cfg) as db:
        db.execute(
            "UPDATE alembic_version SET version_num = ? WHERE version_num = ?",
            (head.down_revision, head.revision),
        )
        before = sorted(db.execute("SELECT version_num FROM alembic_version").fetchall())
    capsys.readouterr()
    assert main(["certs", "list", "-c", str(cfg)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "older" in err and "certgate init" in err, err
    with _db(cfg) as db:
        assert sorted(db.execute("SELECT version_num FROM alembic_version").fetchall()) == before
        db.execute(  # the tables are at head already: only the version row was faked
            "UPDATE alembic_version SET version_num = ? WHERE version_num = ?",
            (head.revision, head.down_revision),
        )
    assert main(["certs", "list", "-c", str(cfg)]) == EXIT_OK


def test_a_schema_from_a_newer_certgate_is_refused(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _db(cfg) as db:
        db.execute("INSERT INTO alembic_version (version_num) VALUES ('zz_9999_future')")
    capsys.readouterr()
    assert main(["requests", "list", "-c", str(cfg)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "zz_9999_future" in err and "newer" in err, err


def test_the_generated_passphrase_warning_is_the_servers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_config(tmp_path)
    csr = tmp_path / "web.csr"
    csr.write_bytes(csr_pem(make_csr(dns=("www.example.test",))))
    with caplog.at_level(logging.WARNING):
        assert main(["init", "-c", str(cfg)]) == EXIT_OK
        assert main(["enroll", "-c", str(cfg), "-t", "tls-server", "--csr", str(csr)]) == 0
        assert main(["ca", "show", "-c", str(cfg)]) == EXIT_OK
    assert not [r for r in caplog.records if "generated passphrase" in r.getMessage()]

    async def serve_start() -> None:  # what serve builds: the default keeps the warning
        components = await build(load_config(cfg))
        await components.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(serve_start())
    warned = [r for r in caplog.records if "generated passphrase" in r.getMessage()]
    assert len(warned) == 1 and "CERTGATE_CA_PASSPHRASE" in warned[0].getMessage()


@pytest.mark.parametrize(
    "command", [["certs", "list"], ["requests", "show", "nope"], ["templates", "show", "nope"]]
)
def test_json_errors_are_json_on_stdout(
    cfg: Path, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    data = ["--data", str(tmp_path / "missing")] if command[0] == "certs" else []
    code = main([*command, "-c", str(cfg), *data, "--json"])
    out, err = capsys.readouterr()
    assert code != EXIT_OK and err == ""
    error = json.loads(out)["error"]
    assert error["exit_code"] == code and error["message"] and error["kind"]


@pytest.mark.parametrize(
    ("command", "headers"),
    [
        (["est", "user", "list"], ["USER", "GROUPS"]),
        (["wstep", "user", "list"], ["USER", "PRINCIPAL", "GROUPS"]),
        (["acme", "eab", "list"], ["KID", "PRINCIPAL", "TEMPLATES", "DOMAINS", "CREATED"]),
        (["acme", "account", "list"], ["ID", "STATUS", "CONTACT", "EAB-KID", "CREATED"]),
        (
            ["templates", "list"],
            ["NAME", "VERSION", "VALIDITY", "RENEWAL", "APPROVAL", "CONNECTOR"],
        ),
    ],
    ids=lambda v: " ".join(v) if v and v[0].islower() else "",
)
def test_listings_print_tables_with_headers(
    cfg: Path, command: list[str], headers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main([*command, "-c", str(cfg)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == headers and set(lines[1]) == {"-", " "}, lines


def test_durations_print_as_the_configuration_spells_them(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["templates", "list", "-c", str(cfg), "--json"]) == EXIT_OK
    by_name = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert (by_name["tls-server"]["validity"], by_name["tls-server"]["renewal_period"]) == (
        "90d",
        "30d",
    )
    assert main(["templates", "list", "-c", str(cfg)]) == EXIT_OK
    row = next(line for line in capsys.readouterr().out.splitlines() if "tls-server" in line)
    assert row.split()[2:4] == ["90d", "30d"]


@pytest.mark.parametrize(
    "command",
    [
        ["ca", "show"],
        ["ca", "export"],
        ["ca", "crl"],
        ["ca", "crl", "--der"],
        ["certs", "due"],
        ["templates", "show", "tls-server"],
        ["requests", "show", "{request}"],
        ["certs", "show", "{serial}"],
    ],
    ids=" ".join,
)
def test_json_means_json_for_every_output(
    cfg: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["certs", "list", "-c", str(cfg), "--json"]) == EXIT_OK
    (cert,) = json.loads(capsys.readouterr().out)
    known = {"{request}": cert["request_id"], "{serial}": cert["serial"]}
    assert main([known.get(w, w) for w in command] + ["-c", str(cfg), "--json"]) == EXIT_OK
    assert isinstance(json.loads(capsys.readouterr().out), list | dict)
