"""Ports declared by their consumers (issue #14 item 1).

Every front-end declares, in ``protocols/<p>/ports.py``, the few core methods it uses; the
composition root hands it only objects of those shapes. These tests hold the seam: no module
under ``protocols/`` reaches through a service object (``service.store``, ``service.clock``,
``service.policy``) or probes what the store is (``hasattr``/``isinstance``/``cast``), and the
concrete core objects satisfy every port a front-end declares. (mypy checks the same
assignments statically where each front-end's ``setup`` narrows its context to its ports.)
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.clock import SystemClock
from gateway.policy import PolicyEngine
from gateway.ports import CAConnector, Transactions
from gateway.service import EnrollmentService
from gateway.store import open_store

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ("acme", "est", "scep", "wstep")
#: What a front-end may not reach for through a service object.
REACH_THROUGH = {"store", "clock", "policy"}
#: Names that say an expression is (or holds) the store.
STORE_NAMES = ("store", "transactions")
#: Types whose test would be a probe of what the store is.
STORE_TYPES = {"SQLStore", "SQLRunner", "StateStore", "Store", "Transactions"}


def _modules() -> list[Path]:
    return sorted((ROOT / "protocols").rglob("*.py"))


def _is_service(node: ast.expr) -> bool:
    """``service``, ``x.service`` or ``x._service``."""
    if isinstance(node, ast.Name):
        return node.id.lstrip("_") == "service"
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_") == "service"
    return False


def test_no_front_end_reaches_through_the_service() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in REACH_THROUGH
                and _is_service(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == [], "front-ends reach through the service:\n" + "\n".join(found)


def _probes_store(name: str, args: list[ast.expr]) -> bool:
    """``hasattr(store, ...)``, ``isinstance(x.store, ...)``, ``isinstance(x, SQLStore)``,
    ``cast(StateStore, c.store)``: the object probed is the store, or the type asked for is a
    store type."""
    if not args:
        return False
    probed, kinds = (args[-1], args[:-1]) if name == "cast" else (args[0], args[1:])
    if any(word in ast.unparse(probed).lower() for word in STORE_NAMES):
        return True
    return any(
        isinstance(n, (ast.Name, ast.Attribute))
        and (n.id if isinstance(n, ast.Name) else n.attr) in STORE_TYPES
        for kind in kinds
        for n in ast.walk(kind)
    )


def test_no_front_end_probes_the_store() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in ("hasattr", "isinstance", "cast"):
                continue
            if _probes_store(name, node.args):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == [], "front-ends probe the store:\n" + "\n".join(found)


#: Modules that compose a front-end (receive the whole ProtocolContext) or run operator
#: commands (receive the CLI's components): the only ones that may name the core's classes.
COMPOSITION = {"frontend.py", "setup.py", "cli.py", "cli_actions.py"}
#: The concrete core classes (and the whole context) a handler must not be typed with.
CONCRETE = {"ProtocolContext", "EnrollmentService", "SQLStore", "PolicyEngine", "Store"}


def test_only_the_composition_names_the_concrete_core() -> None:
    found = []
    for path in _modules():
        if path.name in COMPOSITION:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway"):
                names = {alias.name for alias in node.names} & CONCRETE
                if names:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(names)}")
    assert found == [], "handlers typed with the concrete core:\n" + "\n".join(found)


def test_the_scans_see_what_they_forbid() -> None:
    """The two scans above flag the shapes they are meant to (not vacuous)."""
    tree = ast.parse(
        "acme.service.store.get_certificate(s)\nscep.service.clock.now()\n"
        "isinstance(context.store, SQLStore)\nhasattr(store, 'write')\n"
    )
    reach = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr in REACH_THROUGH and _is_service(n.value)
    ]
    assert len(reach) == 2
    probes = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _probes_store(getattr(n.func, "id", ""), n.args)
    ]
    assert len(probes) == 2
    (harmless,) = ast.parse("isinstance(exc, StoreUnavailable)").body
    assert isinstance(harmless, ast.Expr) and isinstance(harmless.value, ast.Call)
    assert not _probes_store("isinstance", harmless.value.args)


@pytest.fixture
def core(tmp_path: Path) -> dict[str, Any]:
    """The concrete objects the composition root hands out (nothing is connected)."""
    store = open_store(f"sqlite+aiosqlite:///{tmp_path / 'certgate.db'}")
    policy = PolicyEngine({})
    clock = SystemClock()
    connector = cast(CAConnector, object())  # never called: the service is not started
    service = EnrollmentService(store, policy, {"ca": connector}, clock=clock)
    return {"service": service, "store": store, "policy": policy, "clock": clock}


#: Which concrete object implements a port of each name in ``protocols/<p>/ports.py``.
IMPLEMENTED_BY = {
    "Enrollment": "service",
    "Records": "store",
    "OtpStore": "store",
    "Templates": "policy",
    "Clock": "clock",
}


def _ports(protocol: str) -> list[tuple[str, type]]:
    module = importlib.import_module(f"protocols.{protocol}.ports")
    return [
        (name, obj)
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and getattr(obj, "_is_runtime_protocol", False)
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_core_objects_satisfy_each_protocol_port(protocol: str, core: dict[str, Any]) -> None:
    ports = _ports(protocol)
    assert {name for name, _ in ports} >= {"Enrollment", "Records", "Templates"}
    for name, port in ports:
        assert name in IMPLEMENTED_BY, f"protocols.{protocol}.ports.{name}: who implements it?"
        assert isinstance(core[IMPLEMENTED_BY[name]], port), f"{protocol}: {name}"


def test_the_store_is_the_transaction_port(core: dict[str, Any]) -> None:
    assert isinstance(core["store"], Transactions)
    assert core["store"].dialect_name == "sqlite"


def test_every_port_method_states_its_contract() -> None:
    for protocol in PROTOCOLS:
        for name, port in _ports(protocol):
            members = [m for m in vars(port) if not m.startswith("_")]
            assert members, f"{protocol}.{name} declares nothing"
            for member in members:
                attr = vars(port)[member]
                target = attr.fget if isinstance(attr, property) else attr
                assert inspect.getdoc(target), f"protocols.{protocol}.ports.{name}.{member}"
    for member in ("read", "write", "dialect_name"):
        attr = vars(Transactions)[member]
        target = attr.fget if isinstance(attr, property) else attr
        assert inspect.getdoc(target), f"gateway.ports.Transactions.{member}"
