"""Operations signals: Prometheus metrics (:mod:`.metrics`), structured log lines
(:mod:`.logs`) and the enrollment events that feed both from one place in the service path
(:mod:`.events`).

The core side only: nothing here imports aiohttp. The ``/metrics`` handler and the request
latency middleware live in :mod:`gateway.server.metrics`. ``prometheus_client`` is imported
only once a server activates metrics (:func:`.metrics.activate`), so operator commands that
never serve pay nothing for it.
"""
