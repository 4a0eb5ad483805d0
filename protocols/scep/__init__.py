"""SCEP front-end (RFC 8894), NDES-compatible: ``/scep/<endpoint>`` and
``/certsrv/mscep/mscep.dll``. The server shell finds :data:`FRONTEND` by entry point."""

from __future__ import annotations

from protocols.scep.setup import ScepFrontEnd

FRONTEND = ScepFrontEnd()

__all__ = ["FRONTEND"]
