"""The ACME repository's shape: both implementations offer every method of the interface
with its signature, and nothing in protocols/acme asks which database it runs on except the
one place that chooses (the behaviour is tests/contract/test_acme_store.py)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import protocols.acme
from gateway import config as gateway_config
from gateway.store import default_sqlite_url, open_store
from protocols.acme import cli_actions
from protocols.acme.base import Acme
from protocols.acme.ports import AcmePorts
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_postgres import PostgresAcmeRepository
from protocols.acme.repository_sqlite import SQLiteAcmeRepository
from protocols.acme.settings import parse_settings

METHODS = sorted(
    name
    for name, value in vars(AcmeRepository).items()
    if inspect.isfunction(value) and not name.startswith("_")
)
PACKAGE = Path(protocols.acme.__file__).parent


@pytest.mark.parametrize("implementation", [CoreAcmeRepository, SQLiteAcmeRepository])
def test_every_interface_method_is_implemented_with_its_signature(implementation: type) -> None:
    assert len(METHODS) >= 30
    for name in METHODS:
        declared = inspect.signature(getattr(AcmeRepository, name))
        implemented = inspect.signature(getattr(implementation, name))
        assert implemented == declared, name


def test_the_postgresql_implementation_takes_every_methods_parameters() -> None:
    """Its methods are coroutines on the driver's connection (annotated apart), with the
    interface's parameters: names, kinds and defaults."""

    def parameters(function: Any) -> list[tuple[str, Any, Any]]:
        found = inspect.signature(function).parameters.values()
        return [(p.name, p.kind, p.default) for p in found]

    for name in METHODS:
        declared = getattr(AcmeRepository, name)
        assert parameters(getattr(PostgresAcmeRepository, name)) == parameters(declared), name


def test_every_interface_method_states_its_contract() -> None:
    for name in METHODS:
        assert (getattr(AcmeRepository, name).__doc__ or "").strip(), name


def test_the_choice_is_made_in_one_place_and_no_body_asks_the_dialect() -> None:
    """``dialect`` is read only to open the repository (repository.py chooses; the front-end,
    the CLI and the admin API plug-in, each a composition root, pass ``dialect_name`` once)."""
    readers = set()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("dialect", "dialect_name"):
                readers.add(path.name)
    assert readers <= {"base.py", "cli_actions.py", "admin.py"}, readers
    assert type(open_repository("postgresql")) is PostgresAcmeRepository


@pytest.mark.parametrize("raw", [True, False])
async def test_the_front_end_and_the_cli_follow_the_stores_repository_choice(
    tmp_path: Path, raw: bool
) -> None:
    """ACME's state runs Core whenever the core store does (``open_store(raw_sqlite=False)``),
    read through :attr:`gateway.ports.Transactions.raw_sqlite`, not the dialect alone."""
    store = open_store(default_sqlite_url(tmp_path), raw_sqlite=raw)
    try:
        assert store.raw_sqlite is raw
        settings = parse_settings(
            {}, "certgate.toml", default_template="web", templates={"web": {}}, data_dir=tmp_path
        )
        ports = AcmePorts(
            service=cast(Any, None),
            records=cast(Any, None),
            templates=cast(Any, None),
            clock=cast(Any, None),
            transactions=store,
        )
        acme = Acme(
            ports, settings, external_url="https://gw.test", testing=gateway_config.TestingConfig()
        )
        expected = SQLiteAcmeRepository if raw else CoreAcmeRepository
        assert type(acme.repo) is expected
        assert type(cli_actions._repo(SimpleNamespace(store=store))) is expected
    finally:
        await store.close()


def test_a_decoded_account_row_is_the_plain_decoding() -> None:
    """sqlite_rows decodes each distinct account row once: the cached record equals a fresh
    decoding, and a row that changed (deactivated) is decoded afresh."""
    from protocols.acme import sqlite_rows

    row = ("a1", "thumb", '{"kty": "EC", "crv": "P-256"}', "valid", '["mailto:a@b"]', None, "t")
    plain = sqlite_rows._decoded_account.__wrapped__(row)
    assert sqlite_rows.account_from_row(row) == plain
    assert sqlite_rows.account_from_row(list(row)) == plain  # any sequence of the columns
    gone = sqlite_rows.account_from_row((*row[:3], "deactivated", *row[4:]))
    assert gone.status == "deactivated" and gone.jwk == plain.jwk
