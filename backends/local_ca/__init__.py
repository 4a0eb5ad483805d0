"""The embedded local CA: a root and an issuing CA kept encrypted in the data directory.

Entry point ``local`` in group ``certgate.connectors``. Module map, in reading order:

* :mod:`.settings`  -- the connector's TOML table, validated in the constructor;
* :mod:`.keystore`  -- the one interface through which CA private keys are used (HSM seam);
* :mod:`.pkcs11_store` -- that interface over a PKCS#11 token (``key_store = "pkcs11"``);
* :mod:`.importer`  -- loading an existing issuing CA (PEM or PKCS#12) for import;
* :mod:`.bootstrap` -- create (atomically, once) or load the CA directory;
* :mod:`.issuer`    -- RFC 5280 certificate and CRL signing;
* :mod:`.connector` -- :class:`LocalCA`, the :class:`gateway.ports.CAConnector`.
"""

from backends.local_ca.connector import LocalCA

__all__ = ["LocalCA"]
