"""Run ``python -m gateway.cli ...`` with the ACME repository pinned to SQLAlchemy Core (the
plain path), for bench/acme_store_cpu.py's A/B rounds:

    python bench/acme_store_plain.py python -m gateway.cli serve ... --workers 1

(``--workers 1`` serves in this process, so the choice made here holds.)"""

from __future__ import annotations

import runpy
import sys

import protocols.acme.repository as repository


def _plain(dialect: str, *, raw_sqlite: bool = True) -> repository.AcmeRepository:
    return repository.open_repository(dialect, raw_sqlite=raw_sqlite, fast_postgres=False)


import protocols.acme.base as base  # noqa: E402

base.open_repository = _plain  # type: ignore[attr-defined]
assert sys.argv[2:4] == ["-m", "gateway.cli"], sys.argv
sys.argv = sys.argv[3:]
runpy.run_module("gateway.cli", run_name="__main__", alter_sys=True)
