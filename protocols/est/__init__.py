"""EST front-end (RFC 7030, RFC 8951, RFC 9908): IoT fleets enroll and re-enroll over mutual TLS.

Layout: :mod:`messages` (pure wire codecs), :mod:`csrattrs` (template -> CSR attributes),
:mod:`settings` (``[est]``), :mod:`tls` (listener certificate, SSLContext, transport facts),
:mod:`auth` (client certificate / Basic / one-time codes), :mod:`transactions` (idempotency),
:mod:`state` + :mod:`tables` (EST state in the gateway database), :mod:`render` (the one error
mapping), :mod:`routes` (URL space) and :mod:`handlers` (one module per resource), :mod:`cli`.
"""

from __future__ import annotations

__all__ = ["FRONTEND", "EstFrontEnd"]


def __getattr__(name: str) -> object:
    # PEP 562: the front-end, and with it the web stack, is imported when the server asks for
    # it by entry point, not when ``certgate --help`` imports this package's command tree.
    if name in ("FRONTEND", "EstFrontEnd"):
        from protocols.est.frontend import EstFrontEnd

        globals().setdefault("FRONTEND", EstFrontEnd())
        return globals()["FRONTEND"] if name == "FRONTEND" else EstFrontEnd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
