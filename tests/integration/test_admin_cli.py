"""``certgate admin token create|list|revoke`` (issue #16 item 2), in-process through
``main(argv)`` on an initialised gateway: the token is printed once and alone on standard
output, never listed, revocable, and each change is in the audit trail."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from tests.helpers import write_config


@pytest.fixture
def cfg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = write_config(tmp_path)
    assert main(["init", "-c", str(path)]) == EXIT_OK
    capsys.readouterr()
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == EXIT_OK, err or out
    return json.loads(out)


def test_create_prints_the_token_once_and_alone(
    cfg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "admin", "token", "create", "-c", cfg, "--name", "ops", "--role", "approver"
    )
    assert code == EXIT_OK
    token = out.strip()
    assert re.fullmatch(r"cg_[A-Za-z0-9_-]{43}", token) and out == token + "\n"
    assert "shown only now" in err and token not in err
    # listing shows every field but the secret (and not its digest either)
    listed = run_json(capsys, "admin", "token", "list", "-c", cfg)
    assert [(t["name"], t["role"], t["state"]) for t in listed] == [("ops", "approver", "active")]
    code, human, _ = run(capsys, "admin", "token", "list", "-c", cfg)
    digest = hashlib.sha256(token.encode()).hexdigest()
    for text in (json.dumps(listed), human):
        assert token not in text and token[3:] not in text and digest not in text
    assert human.splitlines()[0].split() == [
        "NAME",
        "ROLE",
        "STATE",
        "CREATED",
        "EXPIRES",
        "LAST",
        "USED",
    ]


def test_expiry_revocation_and_the_audit_trail(
    cfg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    made = run_json(
        capsys, "admin", "token", "create", "-c", cfg, "--name", "ci", "--role", "viewer",
        "--expires", "30d",
    )  # fmt: skip
    assert made["token"].startswith("cg_") and made["expires_at"] and made["role"] == "viewer"
    revoked = run_json(capsys, "admin", "token", "revoke", "-c", cfg, "ci")
    assert revoked["state"] == "revoked" and revoked["revoked_at"]
    code, _, err = run(capsys, "admin", "token", "revoke", "-c", cfg, "ci")
    assert code == EXIT_ERROR and "already revoked" in err
    events = run_json(capsys, "audit", "list", "-c", cfg, "--type", "admin.token")
    assert [(e["event"], e["detail"]["name"]) for e in events] == [
        ("admin.token.created", "ci"),
        ("admin.token.revoked", "ci"),
    ]
    assert all(e["actor"].startswith("cli:") for e in events)
    assert made["token"] not in json.dumps(events)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--name", "x", "--role", "root"], EXIT_USAGE, "invalid choice"),
        (["--name", "x", "--role", "viewer", "--expires", "soon"], EXIT_ERROR, "--expires"),
        (["--name", "x", "--role", "viewer", "--expires", "9" * 30 + "y"], EXIT_ERROR, "--expires"),
        (["--name", "a b", "--role", "viewer"], EXIT_ERROR, "token name"),
    ],
)
def test_bad_options_are_one_line(
    cfg: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    try:
        got, _, err = run(capsys, "admin", "token", "create", "-c", cfg, *argv)
    except SystemExit as exc:  # argparse's own refusal
        got, err = int(str(exc.code)), capsys.readouterr().err
    assert got == code and message in err
    assert "Traceback" not in err
    assert run_json(capsys, "admin", "token", "list", "-c", cfg) == []


def test_a_live_name_cannot_be_taken_twice(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("admin", "token", "create", "-c", cfg, "--name", "ops", "--role")
    assert run(capsys, *base, "admin")[0] == EXIT_OK
    code, _, err = run(capsys, *base, "viewer")
    assert code == EXIT_ERROR and "exists" in err
