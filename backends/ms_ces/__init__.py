"""The Microsoft CES connector: certgate as an MS-WSTEP client in front of AD CS.

Entry point ``ms_ces`` in groups ``certgate.connectors`` and ``certgate.cli``. Module map, in
reading order:

* :mod:`.settings`    -- the connector's TOML table;
* :mod:`.client`      -- pooled SOAP-over-HTTPS transport and failure classification;
* :mod:`.connector`   -- :class:`MSCESConnector`, the :class:`gateway.ports.CAConnector`;
* :mod:`.importer`    -- AD CS templates (MS-XCEP policies) -> certgate template TOML;
* :mod:`.cli`         -- ``certgate templates import --xcep URL``, :mod:`.cli_actions` its action.

The wire codecs are :mod:`gateway.codecs.ms`, shared with the CES front-end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.ms_ces.connector import MSCESConnector

__all__ = ["MSCESConnector"]


def __getattr__(name: str) -> object:
    # PEP 562: the connector, and with it the HTTP and crypto stack, is imported when the
    # composition root asks for it by entry point, not when ``certgate --help`` imports this
    # package's command tree (:mod:`.cli`).
    if name == "MSCESConnector":
        from backends.ms_ces.connector import MSCESConnector

        return MSCESConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
