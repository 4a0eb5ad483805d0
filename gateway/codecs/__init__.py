"""Wire codecs shared by protocols and backends: pure bytes -> objects -> bytes, no I/O.

A front-end and a connector that speak the same messages (certgate's CES front-end and its CES
client) both import the codec from here, so neither imports the other. A codec imports nothing
of certgate but :mod:`gateway.errors` (malformed input is :class:`~gateway.errors.BadRequest`)
and :mod:`gateway.pkix`; the import-linter contracts in ``pyproject.toml`` keep it so.

* :mod:`gateway.codecs.ms` -- Microsoft enrollment protocols (MS-WSTEP, MS-XCEP).
"""
