"""Every ``gateway.pkix`` module imports on its own, whichever is imported first (issue #12
item 19: ``import gateway.pkix.cms_build`` alone raised ImportError through a cycle with cms).

One subprocess: import order is process state, and the test process has imported these long
ago. Inside it, each module is imported first into a ``sys.modules`` emptied of gateway.pkix.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gateway.pkix

SCRIPT = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "gateway.pkix" or m.startswith("gateway.pkix.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_pkix_module_imports_first_on_its_own() -> None:
    modules = sorted(f"gateway.pkix.{m.name}" for m in pkgutil.iter_modules(gateway.pkix.__path__))
    assert "gateway.pkix.cms_build" in modules and "gateway.pkix.cms" in modules
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *modules], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
