"""TLS on the main listener (``[server.tls]``): its certificate source and ``SSLContext``.

The certificate and key come from ``[server.tls] certificate``/``key``, or are issued by the
gateway's own CA through the enrollment service (template ``[server.tls] template``, requester
``certgate-listener``) for ``[server.tls] names`` and kept in ``<data dir>/tls/``. Issuing,
renewal and reload (every :data:`gateway.listener_tls.CHECK_INTERVAL` and on SIGHUP) are
:mod:`gateway.listener_tls`'s, shared with the listeners front-ends open (EST's).
"""

from __future__ import annotations

import logging
import ssl

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.listener_tls import CertificateSource, Enroller, ListenerCertificate, server_context
from gateway.model import Requester

log = logging.getLogger("certgate.server")

LISTENER_PRINCIPAL = "certgate-listener"


def main_listener_certificate(config: Config, service: Enroller) -> ListenerCertificate:
    """The main listener's certificate and ``SSLContext`` (HTTP/1.1 by ALPN), not loaded yet:
    :meth:`ListenerCertificate.start` obtains and loads it."""
    settings = config.server.tls
    assert settings is not None
    source = CertificateSource(
        what="listener certificate",
        config_file=config.file,
        config_key="server.tls",
        names_key="server.tls.names",
        names=settings.names,
        template=settings.template,
        requester=Requester("server", LISTENER_PRINCIPAL, "local"),
        directory=config.data_dir / "tls",
        certificate=settings.certificate,
        key=settings.key,
    )
    context = server_context()
    context.set_alpn_protocols(["http/1.1"])
    admin = config.admin
    if admin.enabled and admin.client_ca is not None:
        # Admin API clients may sign in with a certificate from [admin] client_ca; none is
        # required (every other client of this listener goes on without one).
        context.verify_mode = ssl.CERT_OPTIONAL
        try:
            context.load_verify_locations(cafile=str(admin.client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(config.file, "admin.client_ca", f"cannot load: {exc}") from None
    return ListenerCertificate(source, service, context, log)
