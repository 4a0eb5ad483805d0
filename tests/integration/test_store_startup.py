"""Issue #12 items 3/4/16 at start-up, through the CLI's main(argv): a data directory that
holds a CA but lost its database is refused by name (never given a new, empty database);
an unreachable database is one line naming ``[store] url``, not a traceback; the data
directory and database files are private whatever the umask."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config import load_config
from gateway.server.wiring import build
from tests.helpers import free_port, write_config


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def first_run(tmp_path: Path) -> tuple[Path, Path]:
    """A gateway created by the composition root, as its first start does: (config, data)."""
    cfg = write_config(tmp_path)

    async def create() -> None:
        components = await build(load_config(cfg), start_service=False)
        await components.close()

    asyncio.run(create())
    data = tmp_path / "data"
    assert (data / "certgate.db").is_file() and (data / "ca" / "chain.pem").is_file()
    return cfg, data


def delete_database(data: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data / f"certgate.db{suffix}").unlink(missing_ok=True)


def test_serve_refuses_a_new_database_beside_an_existing_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, data = first_run(tmp_path)
    delete_database(data)
    capsys.readouterr()
    code = main(["serve", "-c", str(cfg), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code != 0
    assert str(data) in err and "ca/" in err and "refusing to create" in err
    assert "Traceback" not in err
    assert not (data / "certgate.db").exists()


def test_cli_commands_refuse_a_data_directory_whose_database_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, data = first_run(tmp_path)
    delete_database(data)
    capsys.readouterr()
    for argv in (["ca", "show"], ["certs", "list"]):
        code = main([*argv, "-c", str(cfg)])
        err = capsys.readouterr().err
        assert code != 0, argv
        assert str(data) in err, (argv, err)
        assert not (data / "certgate.db").exists(), argv


def test_serve_with_an_unreachable_database_is_one_line_naming_store_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    cfg = write_config(
        tmp_path,
        f"""
        [store]
        url = "postgresql+asyncpg://certgate@127.0.0.1:{port}/certgate"
        """,
    )
    code = main(["serve", "-c", str(cfg), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "[store] url" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0] and str(cfg) in lines[0]
    # Nothing else is logged on the way (pytest's handler stands in for serve's stderr).
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


def test_data_directory_and_database_are_private_whatever_the_umask(
    tmp_path: Path, umask_zero: None
) -> None:
    _, data = first_run(tmp_path)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("certgate.db", "certgate.db-wal", "certgate.db-shm"):
        path = data / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert stat.S_IMODE((data / "certgate.db").stat().st_mode) == 0o600


def test_an_existing_data_directory_others_can_read_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, data = first_run(tmp_path)
    os.chmod(data, 0o755)
    first_run(tmp_path)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert any(str(data) in r.getMessage() and "755" in r.getMessage() for r in caplog.records)
