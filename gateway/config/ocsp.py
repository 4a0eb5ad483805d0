"""``[ocsp]``: the OCSP responder at ``/ocsp`` (RFC 6960, RFC 5019 profile).

On by default: a gateway whose CA is the local CA answers for its certificates. The AIA
id-ad-ocsp URL goes into issued certificates only when it can reach relying parties: ``url``
when set, else ``<device URL>/ocsp`` when ``[server] external_url`` (or ``[server.plain]
external_url``) is configured, never the derived ``http://127.0.0.1:8080`` kind of URL;
``url = ""`` puts none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from gateway.config.server import ServerConfig
from gateway.toml_reader import Table

__all__ = ["OCSP_PATH", "OcspConfig", "OcspSigner", "parse_ocsp"]

#: Where the responder is served (GET ``/ocsp/<base64>`` and POST ``/ocsp``).
OCSP_PATH = "/ocsp"
_MINUTE = timedelta(minutes=1)


class OcspSigner(enum.StrEnum):
    """Who signs the responses: a delegated responder certificate, or the CA key itself."""

    DELEGATED = "delegated"
    CA = "ca"


@dataclass(frozen=True)
class OcspConfig:
    """``[ocsp]``: ``aia_url`` is the URL put into issued certificates (None: none)."""

    enabled: bool = True
    aia_url: str | None = None
    signer: OcspSigner = OcspSigner.DELEGATED
    #: nextUpdate - thisUpdate of every answer, and the longest HTTP max-age
    response_validity: timedelta = timedelta(hours=1)
    #: lifetime of a delegated responder certificate (renewed with a third left)
    signer_validity: timedelta = timedelta(days=7)


def _default_url(server: ServerConfig) -> str | None:
    configured = server.plain.external_url_configured if server.plain else False
    if configured or server.external_url_configured:
        return f"{server.device_url}{OCSP_PATH}"
    return None


def parse_ocsp(t: Table, server: ServerConfig) -> OcspConfig:
    """Validate ``[ocsp]`` (``t``); the default AIA URL follows ``server``."""
    enabled = t.bool("enabled", True)
    url: str | None = t.opt_str("url")
    if url is None:
        url = _default_url(server)
    elif url == "":
        url = None
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
            t.fail("url", f"expected an absolute http:// URL (RFC 5019 §5), got {url!r}")
    signer = t.choice("signer", t.str("signer", OcspSigner.DELEGATED.value), OcspSigner)
    response_validity = t.duration("response_validity", "1h", minimum=_MINUTE)
    signer_validity = t.duration("signer_validity", "7d", minimum=timedelta(hours=1))
    t.finish()
    if signer is OcspSigner.DELEGATED and signer_validity < 3 * response_validity:
        t.fail(
            "signer_validity",
            "must be at least three times response_validity (the responder certificate is "
            "renewed with a third of its lifetime left, and no answer outlives it)",
        )
    if not enabled:
        url = None
    return OcspConfig(enabled, url, signer, response_validity, signer_validity)
