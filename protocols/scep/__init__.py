"""SCEP front-end (RFC 8894), NDES-compatible: ``/scep/<endpoint>`` and
``/certsrv/mscep/mscep.dll``. The server shell finds :data:`FRONTEND` by entry point."""

from __future__ import annotations

__all__ = ["FRONTEND"]


def __getattr__(name: str) -> object:
    # PEP 562: the front-end, and with it the web stack, is imported when the server asks for
    # it by entry point, not when ``certgate --help`` imports this package's command tree.
    if name in ("FRONTEND",):
        from protocols.scep.setup import ScepFrontEnd

        globals().setdefault("FRONTEND", ScepFrontEnd())
        return globals()["FRONTEND"] if name == "FRONTEND" else ScepFrontEnd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
