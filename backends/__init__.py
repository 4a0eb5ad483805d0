"""CA connectors (adapters): each implements :class:`gateway.ports.CAConnector`.

A backend imports only the gateway core (model, errors, ports, config, pkix); the composition
root finds it by entry-point name in the ``certgate.connectors`` group.
"""
