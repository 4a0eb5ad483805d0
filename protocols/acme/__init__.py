"""ACME server front-end (RFC 8555, RFC 8737, RFC 8738, RFC 9773, draft-ietf-acme-profiles).

Resources, one module each: ``directory`` (directory, newNonce, the terms-of-service
instructions page), ``account`` (newAccount, account, orders, keyChange), ``order``
(newOrder, order), ``finalize``, ``authz`` (authorization, challenge), ``certificate`` (with
format negotiation), ``revoke``, ``renewal_info``. Wire codecs are in ``messages`` (its JSON
text in ``json_text``) and ``jws``; state in ``tables``, ``records`` (the state
dataclasses, re-exported with the derived order status by ``state``) and the repository
(``repository``: the interface and its choice; ``repository_core`` and
``repository_core_orders``: SQLAlchemy Core; ``repository_sqlite`` with the SQL of
``sqlite_rows``: raw SQLite); challenge validation in ``validation``, CAA (RFC 8659) in
``caa``; rate limits in ``ratelimit``; shared request handling (JWS authentication, the
terms-of-service gate, nonces, responses) in ``base``.
"""

from __future__ import annotations

__all__ = ["FRONTEND"]


def __getattr__(name: str) -> object:
    # PEP 562: the front-end, and with it the web stack, is imported when the server asks for
    # it by entry point, not when ``certgate --help`` imports this package's command tree.
    if name == "FRONTEND":
        from protocols.acme import frontend

        return getattr(frontend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
