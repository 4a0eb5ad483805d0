"""Who is calling the admin API (issue #16; the contract in the admin API notes).

Two credentials, one token store (:class:`gateway.admin.tokens.AdminTokens`):

* ``Authorization: Bearer cg_...``: API clients.
* the console's session cookie ``certgate_console`` (the raw token; HttpOnly, Secure,
  SameSite=Strict, set by the console's sign-in). A cookie is sent by the browser on its own,
  so a cookie-authenticated call that changes something (any method but GET/HEAD) must also
  carry ``X-CSRF-Token: hex(HMAC-SHA256(key=token, msg=b"certgate-csrf"))``, which a page on
  another origin cannot compute (double submit bound to the secret; `GET /api/v1/whoami`
  hands it to the console's script).

No, malformed, unknown, expired or revoked credentials are a 401 problem document with
``WWW-Authenticate: Bearer``; a role below the operation's is a 403 (the router checks it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from cryptography import x509

from gateway.admin.plugin import AdminProblem, Role
from gateway.admin.tokens import AdminToken, AdminTokens, TokenRejected

COOKIE_NAME = "certgate_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_MESSAGE = b"certgate-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = "certgate"


def csrf_token(token: str) -> str:
    """The CSRF value of a console session whose cookie holds ``token``."""
    return hmac.new(token.encode("utf-8"), CSRF_MESSAGE, hashlib.sha256).hexdigest()


class Unauthorized(AdminProblem):
    """401: rendered with ``WWW-Authenticate: Bearer`` (RFC 6750 §3)."""

    def __init__(self, detail: str, *, presented: bool) -> None:
        super().__init__(401, "Unauthorized", detail)
        challenge = f'Bearer realm="{REALM}"'
        if presented:
            challenge += ', error="invalid_token"'
        self.challenge = challenge


@dataclass(frozen=True)
class Session:
    """An authenticated caller: the token, and whether it came in the console's cookie
    (then ``csrf`` is the value changing calls must carry). A caller signed in by a TLS client
    certificate (``[admin] client_roles``) has a stand-in token named by the certificate's
    subject, and ``client_certificate`` set."""

    token: AdminToken
    via_cookie: bool
    csrf: str | None = None
    client_certificate: bool = False

    @property
    def actor(self) -> str:
        """``token:<name>``, or ``cert:<subject>`` for a client certificate."""
        return f"cert:{self.token.name}" if self.client_certificate else self.token.actor


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", presented=True)
    return value.strip()


def _client_certificate(request: web.Request) -> x509.Certificate | None:
    """The TLS client certificate the handshake verified (``[admin] client_ca``), if any."""
    tls = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def _certificate_session(
    certificate: x509.Certificate, roles: Mapping[str, str], now: datetime
) -> Session:
    subject = certificate.subject.rfc4514_string()
    role = roles.get(subject)
    if role is None:
        raise Unauthorized(
            f"client certificate {subject[:200]!r} has no admin role ([admin.client_roles])",
            presented=False,
        )
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise Unauthorized("the client certificate is not valid now", presented=False)
    stand_in = AdminToken(
        name=subject,
        role=Role[role.upper()],
        created_at=certificate.not_valid_before_utc,
        created_by="[admin.client_roles]",
        expires_at=certificate.not_valid_after_utc,
        revoked_at=None,
        last_used_at=None,
    )
    return Session(stand_in, via_cookie=False, client_certificate=True)


async def authenticate(
    request: web.Request,
    tokens: AdminTokens,
    client_roles: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Session:
    """The caller's session, or :class:`Unauthorized`. A bearer token wins over a cookie,
    which wins over a TLS client certificate (mapped to a role by ``client_roles``)."""
    presented = _bearer(request)
    via_cookie = False
    if presented is None:
        presented = request.cookies.get(COOKIE_NAME) or None
        via_cookie = presented is not None
    if presented is None and client_roles:
        certificate = _client_certificate(request)
        if certificate is not None:
            return _certificate_session(certificate, client_roles, now or datetime.now(UTC))
    if presented is None:
        raise Unauthorized(
            "this API needs a token: Authorization: Bearer <token> (certgate admin token create)",
            presented=False,
        )
    try:
        token = await tokens.authenticate(presented)
    except TokenRejected as exc:
        raise Unauthorized(exc.reason, presented=True) from None
    return Session(token, via_cookie, csrf_token(presented) if via_cookie else None)


def check_csrf(request: web.Request, session: Session) -> None:
    """A cookie session's changing call must carry the session's CSRF value (403 if not)."""
    if not session.via_cookie or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "replace")
    if not (session.csrf and hmac.compare_digest(sent, session.csrf.encode())):
        detail = f"a console call that changes something needs the {CSRF_HEADER} header"
        raise AdminProblem(403, "Forbidden", detail)
