"""The ACME repository's shape: both implementations offer every method of the interface
with its signature, and nothing in protocols/acme asks which database it runs on except the
one place that chooses (the behaviour is tests/contract/test_acme_store.py)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import protocols.acme
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_sqlite import SQLiteAcmeRepository

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


def test_every_interface_method_states_its_contract() -> None:
    for name in METHODS:
        assert (getattr(AcmeRepository, name).__doc__ or "").strip(), name


def test_the_choice_is_made_in_one_place_and_no_body_asks_the_dialect() -> None:
    """``dialect`` is read only to open the repository (repository.py chooses; the front-end
    and the CLI pass ``store.dialect_name`` once)."""
    readers = set()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("dialect", "dialect_name"):
                readers.add(path.name)
    assert readers <= {"base.py", "cli_actions.py"}, readers
    assert type(open_repository("postgresql")) is CoreAcmeRepository
