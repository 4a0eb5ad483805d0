"""``certgate --help`` and argument errors import no database, web or crypto stack (issue #15
item 3): the command trees, built-in and plug-in, are light; each action is imported only when
its command runs.

A subprocess per case, because what is asked is what a fresh interpreter imports; the child
runs ``main(argv)`` and reports ``sys.modules`` even when argparse exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What a parse-only run must not import (cryptography and asn1crypto as well: the config and
#: template stack pulls them in, so their absence shows nothing past argparse was imported).
HEAVY = ("sqlalchemy", "alembic", "aiohttp", "aiosqlite", "asyncpg", "cryptography",
         "asn1crypto", "josepy", "uvloop")  # fmt: skip
#: Of the backends, only a connector's command tree (its ``certgate.cli`` entry point).
LIGHT_BACKENDS = {"backends", "backends.ms_ces", "backends.ms_ces.cli"}

CHILD = """
import json, sys
from gateway.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.readline())))
heavy += sorted(m for m in sys.modules if m.split(".")[0] == "backends")
sys.__stderr__.write("\\nMODULES " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def _run(*argv: str) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        input=json.dumps(HEAVY) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    marker = proc.stderr.rsplit("MODULES ", 1)
    assert len(marker) == 2, proc.stderr
    report = json.loads(marker[1])
    heavy = [m for m in report["heavy"] if m not in LIGHT_BACKENDS]
    return report["code"], heavy, proc.stdout + marker[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["requests", "--help"],
        ["audit", "list", "--help"],
        ["est", "user", "add", "--help"],
        ["acme", "eab", "--help"],
        ["wstep", "user", "--help"],
        ["scep", "otp", "create", "--help"],
        ["templates", "import", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_heavy_stack(argv: list[str]) -> None:
    code, heavy, out = _run(*argv)
    assert code == 0 and "usage: certgate" in out, out
    assert heavy == [], f"certgate {' '.join(argv)} imported {heavy}"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuchcommand"],
        ["requests", "list", "--state", "bogus"],
        ["certs", "revoke"],
        ["audit", "show", "not-a-number"],
        ["est", "user", "add"],
        ["acme", "eab", "create"],
        ["wstep", "user", "add", "x", "--password-env", "A", "--password-file", "B"],
        ["templates", "import", "--connector", "ces"],
    ],
    ids=lambda a: " ".join(a) or "(nothing)",
)
def test_argument_errors_import_no_heavy_stack(argv: list[str]) -> None:
    code, heavy, out = _run(*argv)
    assert code == 2 and "usage: certgate" in out, out
    assert heavy == [], f"certgate {' '.join(argv)} imported {heavy}"


def test_the_check_sees_heavy_imports() -> None:
    """The probe itself: a command that runs does import the store (so an empty list above
    means nothing was imported, not that the probe is blind)."""
    code, heavy, out = _run("requests", "list", "--data", "/nonexistent/certgate-data")
    assert code == 2 and "/nonexistent/certgate-data" in out, out
    assert "cryptography" in heavy
