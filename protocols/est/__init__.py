"""EST front-end (RFC 7030, RFC 8951, RFC 9908): IoT fleets enroll and re-enroll over mutual TLS.

Layout: :mod:`messages` (pure wire codecs), :mod:`csrattrs` (template -> CSR attributes),
:mod:`settings` (``[est]``), :mod:`tls` (listener certificate, SSLContext, transport facts),
:mod:`auth` (client certificate / Basic / one-time codes), :mod:`transactions` (idempotency),
:mod:`state` + :mod:`tables` (EST state in the gateway database), :mod:`render` (the one error
mapping), :mod:`routes` (URL space) and :mod:`handlers` (one module per resource), :mod:`cli`.
"""

from protocols.est.frontend import EstFrontEnd

FRONTEND = EstFrontEnd()

__all__ = ["FRONTEND", "EstFrontEnd"]
