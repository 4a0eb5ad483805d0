"""The CLI's global options and what a CLI call may create (issue #12 items 17 and 18).

``--config``, ``--data`` and ``--json`` work before the command group, between its words and
after them; a command other than ``init``/``serve`` never creates a database or a CA; operator
mistakes get one line naming the file or directory and the reason. In-process through
``main(argv)``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.cli import EXIT_OK, EXIT_USAGE, build_parser, main
from gateway.cli.main import parse_args
from tests.helpers import csr_pem, make_csr, write_config


def _leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(command words, minimal arguments) of every runnable command, front-ends' included."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        args: list[str] = []
        for action in parser._actions:
            if not action.required:
                continue
            value = str(next(iter(action.choices))) if action.choices else "1"
            args += [value] if not action.option_strings else [action.option_strings[0], value]
        yield path, tuple(args)
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_commands(child, (*path, name))


LEAVES = sorted(_leaf_commands(build_parser()))


def test_the_walk_finds_nested_and_front_end_commands() -> None:
    words = {path for path, _ in LEAVES}
    assert {("serve",), ("requests", "approve"), ("certs", "revoke")} <= words
    assert ("est", "user", "add") in words and ("acme", "eab", "create") in words


@pytest.mark.parametrize(("path", "args"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_global_options_work_at_every_position(
    path: tuple[str, ...], args: tuple[str, ...]
) -> None:
    options = ["--config", "/cfg.toml", "--data", "/data", "--json"]
    for at in range(len(path) + 1):
        argv = [*path[:at], *options, *path[at:], *args]
        ns = parse_args(argv)
        assert (ns.config, ns.data, ns.json) == (Path("/cfg.toml"), Path("/data"), True), argv
    # each option alone, at each position, and the short -c
    for at in range(len(path) + 1):
        ns = parse_args([*path[:at], "-c", "/c.toml", *path[at:], *args])
        assert (ns.config, ns.data, ns.json) == (Path("/c.toml"), None, False)
        ns = parse_args([*path[:at], "--data", "/d", *path[at:], *args])
        assert (ns.config, ns.data, ns.json) == (None, Path("/d"), False)


def test_options_before_the_command_reach_the_data_directory_they_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)  # its [data] dir is tmp_path/data
    elsewhere = tmp_path / "elsewhere"
    assert main(["--config", str(cfg), "--data", str(elsewhere), "init"]) == EXIT_OK
    csr = tmp_path / "web.csr"
    csr.write_bytes(csr_pem(make_csr(dns=("www.example.test",))))
    code = main(["--config", str(cfg), "--data", str(elsewhere), "--json", "enroll",
                 "--template", "tls-server", "--csr", str(csr)])  # fmt: skip
    assert code == EXIT_OK
    capsys.readouterr()
    assert main(["--config", str(cfg), "--data", str(elsewhere), "--json", "certs", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["sans"] for c in listed] == [["dns:www.example.test"]]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["requests", "list"],
        ["requests", "approve", "0190a0b0-0000-7000-8000-000000000000"],
        ["certs", "revoke", "1f"],
        ["certs", "list"],
        ["ca", "export"],
        ["enroll", "--template", "tls-server", "--csr", "x.csr"],
        ["est", "user", "add", "carol", "--password-env", "PW"],
        ["acme", "eab", "create", "--principal", "ops"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_command_never_creates_a_database_or_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    cfg = write_config(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert main(["-c", str(cfg), "--data", str(fresh), *command]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(fresh) in err and "--data" in err, err
    assert "init" in err
    assert list(fresh.iterdir()) == []
    missing = tmp_path / "missing"
    assert main([*command, "-c", str(cfg), "--data", str(missing)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err, err
    assert not missing.exists() and not (tmp_path / "data").exists()


def test_init_creates_and_reports_then_commands_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main(["init", "-c", str(cfg)]) == EXIT_OK
    out = capsys.readouterr().out
    assert str(tmp_path / "data") in out and "SHA-256" in out
    assert main(["requests", "list", "-c", str(cfg), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == []
    assert main(["init", "-c", str(cfg)]) == EXIT_OK  # idempotent: opens what exists


def test_data_directory_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "data").write_text("not a directory\n")
    for command in (["init"], ["certs", "list"]):
        assert main([*command, "-c", str(cfg)]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(tmp_path / "data") in err, err
        assert "data" in err and "directory" in err and "Traceback" not in err


def test_data_directory_that_cannot_be_created_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["init", "-c", str(cfg), "--data", str(blocker / "sub")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(blocker / "sub") in err and "--data" in err, err


def test_binary_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "certgate.toml"
    cfg.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe[server]\n")
    assert main(["certs", "list", "-c", str(cfg)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cfg) in err and "UTF-8" in err, err
    assert not (tmp_path / ".certgate").exists()


PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg_admin(sql: str) -> object:
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_ADMIN_DSN} unreachable ({type(exc).__name__})"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        return await admin.fetchval(sql)
    finally:
        await admin.close()


@pytest.mark.postgres
def test_a_command_never_creates_tables_in_an_empty_postgresql_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"certgate_cli_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
        cfg = write_config(tmp_path, f'[store]\nurl = "postgresql+asyncpg://{server}/{name}"\n')
        (tmp_path / "data").mkdir()
        assert main(["certs", "list", "-c", str(cfg)]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err and "init" in err, err
        assert list((tmp_path / "data").iterdir()) == []
        assert main(["init", "-c", str(cfg)]) == EXIT_OK
        assert main(["certs", "list", "-c", str(cfg), "--json"]) == EXIT_OK
        # The database exists now; another (empty) data directory holds no CA for it, and a
        # command pointed there must not create one.
        other = tmp_path / "other"
        other.mkdir()
        assert main(["certs", "list", "-c", str(cfg), "--data", str(other)]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(other) in err and "local CA" in err, err
        assert list(other.iterdir()) == []
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
