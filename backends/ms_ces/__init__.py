"""The Microsoft CES connector: certgate as an MS-WSTEP client in front of AD CS.

Entry point ``ms_ces`` in group ``certgate.connectors``. Module map, in reading order:

* :mod:`.settings`  -- the connector's TOML table;
* :mod:`.client`    -- pooled SOAP-over-HTTPS transport and failure classification;
* :mod:`.connector` -- :class:`MSCESConnector`, the :class:`gateway.ports.CAConnector`;
* :mod:`.importer`  -- ``certgate templates import --xcep URL``: AD CS templates -> TOML.
"""

from backends.ms_ces.connector import MSCESConnector

__all__ = ["MSCESConnector"]
