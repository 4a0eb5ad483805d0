"""The import-linter contracts in pyproject.toml bite (issue #14 item 9).

Two halves. The contracts cover what they claim: every module of gateway/ but the server shell
and the CLI is a source of the core contract, and every protocol and backend package is in its
independence contract, so a module or package added later cannot slip past them unlisted. And
they break when they should: one import planted on purpose per contract, in a copy of the tree
that lint-imports analyses instead of the editable install, breaks that contract naming the
planted line; the same copy unmodified keeps them all.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.datadir import DataDirError, require_local_cas
from gateway.config import load_config
from tests.helpers import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SHELL = {"gateway.server", "gateway.cli"}

#: One forbidden import per contract id: (file in the tree, importer module, imported module).
#: Each is appended as the file's last line, so lint-imports must name it with that line number.
PLANTED: dict[str, list[tuple[str, str, str]]] = {
    "core": [
        ("gateway/passwords.py", "gateway.passwords", "aiohttp"),
        ("gateway/toml_reader.py", "gateway.toml_reader", "protocols.scep"),
    ],
    "protocols-independent": [("protocols/acme/__init__.py", "protocols.acme", "protocols.est")],
    "backends-independent": [
        ("backends/ms_ces/__init__.py", "backends.ms_ces", "backends.local_ca")
    ],
    "protocols-backends-independent": [
        ("protocols/scep/__init__.py", "protocols.scep", "backends.local_ca")
    ],
    "shell-entry-points": [
        ("gateway/cli/__init__.py", "gateway.cli", "protocols.wstep"),
        ("gateway/server/__init__.py", "gateway.server", "backends.ms_ces"),
    ],
    "backends-no-shell": [("backends/local_ca/__init__.py", "backends.local_ca", "gateway.server")],
    "codecs": [("gateway/codecs/__init__.py", "gateway.codecs", "gateway.model")],
    "model-over-pkix": [("gateway/pkix/__init__.py", "gateway.pkix", "gateway.model")],
    "cms-layers": [("gateway/pkix/der.py", "gateway.pkix.der", "gateway.pkix.cms")],
    "protocols-no-sqlite3": [("protocols/wstep/__init__.py", "protocols.wstep", "sqlite3")],
}


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def subpackages(package: str) -> set[str]:
    """The modules and packages directly under ``package`` (``gateway.model``, ``gateway.pkix``),
    without ``__init__``; a directory holding no Python at all is data, not a package."""
    found = set()
    for child in (REPO / package).iterdir():
        if child.suffix == ".py" and child.stem != "__init__":
            found.add(f"{package}.{child.stem}")
        elif child.is_dir() and any(child.rglob("*.py")):
            assert (child / "__init__.py").is_file(), f"{child} holds Python but no __init__.py"
            found.add(f"{package}.{child.name}")
    return found


# -- the contracts cover what they claim ---------------------------------------------------------


def test_every_contract_planted_here_is_in_pyproject_and_the_other_way_round() -> None:
    assert set(PLANTED) == set(contracts())


def test_the_core_contract_covers_all_of_gateway_but_the_server_shell_and_the_cli() -> None:
    core = contracts()["core"]
    assert set(core["source_modules"]) == subpackages("gateway") - SHELL
    assert SHELL | {"protocols", "backends", "aiohttp"} <= set(core["forbidden_modules"])
    # Indirect imports count too: no core module may reach a protocol through another module.
    assert not core.get("allow_indirect_imports", False)


def test_the_gateway_package_itself_imports_nothing() -> None:
    """``gateway/__init__.py`` cannot be a source module (that would take in the shell and the
    CLI), so it must stay free of imports."""
    tree = ast.parse((REPO / "gateway" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_gateway_site_is_package_data_only() -> None:
    assert not list((REPO / "gateway" / "site").rglob("*.py"))


@pytest.mark.parametrize(
    ("contract", "package"),
    [("protocols-independent", "protocols"), ("backends-independent", "backends")],
)
def test_every_protocol_and_backend_is_in_its_independence_contract(
    contract: str, package: str
) -> None:
    found = contracts()[contract]
    assert found["type"] == "independence"
    assert set(found["modules"]) == subpackages(package)


def test_the_shell_contract_forbids_every_protocol_and_backend() -> None:
    shell = contracts()["shell-entry-points"]
    assert set(shell["source_modules"]) == SHELL
    assert set(shell["forbidden_modules"]) == {"protocols", "backends"}
    assert not shell.get("allow_indirect_imports", False)


# -- the contracts break when they should ---------------------------------------------------------


def copy_tree(destination: Path) -> None:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("gateway", "protocols", "backends"):
        shutil.copytree(REPO / package, destination / package, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", destination / "pyproject.toml")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the copy in ``tree``: it comes first on the path, ahead of the editable
    install's finder (checked), and no cache from the repository is read."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "1000"}  # names unwrapped
    where = subprocess.run(
        [sys.executable, "-c", "import gateway, protocols, backends as b; print(b.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(tree), where.stdout
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def broken_sections(output: str) -> dict[str, str]:
    """Contract name -> its report under "Broken contracts"."""
    _, _, broken = output.partition("Broken contracts")
    parts = re.split(r"\n(.+)\n-{4,}\n", broken)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_an_import_planted_on_purpose_breaks_each_contract(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    copy_tree(clean)
    kept = lint_imports(clean)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"Contracts: {len(PLANTED)} kept, 0 broken." in kept.stdout

    planted = tmp_path / "planted"
    shutil.copytree(clean, planted)
    expected: dict[str, list[str]] = {}
    for contract, offences in PLANTED.items():
        for path, importer, imported in offences:
            file = planted / path
            lines = file.read_text().splitlines()
            lines.append(f"import {imported}  # planted by test_import_contracts")
            file.write_text("\n".join(lines) + "\n")
            expected.setdefault(contract, []).append(f"{importer} -> {imported} (l.{len(lines)})")
    result = lint_imports(planted)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Contracts: 0 kept, {len(PLANTED)} broken." in result.stdout, result.stdout
    sections = broken_sections(result.stdout)
    for contract, lines in expected.items():
        name = contracts()[contract]["name"]
        assert name in sections, (name, list(sections))
        for line in lines:
            assert line in sections[name], (contract, line, sections[name])


# -- the CLI finds connectors by entry point only ---------------------------------------------


def test_the_cli_asks_the_connector_found_by_entry_point_whether_its_ca_exists(
    tmp_path: Path,
) -> None:
    config = load_config(None, data_dir=tmp_path)
    assert config.connectors["local"].type == "local"
    with pytest.raises(DataDirError, match=r"no local CA for connector 'local' \(.*/ca\)"):
        require_local_cas(config, argparse.Namespace(data=None))
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "chain.pem").write_text("")
    require_local_cas(config, argparse.Namespace(data=None))
