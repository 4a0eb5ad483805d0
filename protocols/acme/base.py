"""What every ACME handler shares: URLs, nonces, JWS authentication (with the terms-of-service
gate, RFC 8555 §7.3.3), responses, per-process request limits (:mod:`ratelimit`).

A POST is authenticated in one pass (RFC 8555 §6.2-§6.5): media type, JWS shape and header
rules, url == request URL, the signer's account is loaded and the signature checked; the nonce
is taken (and the next one issued) later, in the transaction of the handler's first write or
read (:meth:`Acme.write`), or at :meth:`Acme.finish`.

The account of a ``kid`` comes from a per-process cache when this process has read it before
(:class:`AccountCache`): the nonce's transaction then takes the nonce only if the account still
reads exactly as cached, so nothing is written or answered on a stale copy. When it does not
(the key was rolled over, the account deactivated or updated, by any instance), the request is
authenticated again from the database and handled from the start (:func:`handler`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.config import TestingConfig
from gateway.errors import CertgateError, StoreUnavailable
from protocols.acme import jws as J
from protocols.acme import state
from protocols.acme.account_cache import AccountCache, AccountChanged
from protocols.acme.errors import problem_from
from protocols.acme.messages import Problem, dumps
from protocols.acme.ports import AcmePorts
from protocols.acme.ratelimit import RateLimiter
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.settings import AcmeSettings

log = logging.getLogger("certgate.acme")
JOSE = "application/jose+json"
#: Request storage: the authenticated JWS, the fresh nonce once the used one was taken, and
#: "authenticate from the database" (the second pass after a stale cached account).
_SIGNED = "acme_signed"
_FRESH = "acme_nonce"
_PLAIN = "acme_plain"


def nonce_value(expires: datetime) -> str:
    """A fresh nonce (RFC 8555 §6.5: unique and unpredictable, base64url characters): its
    expiry in microseconds since the epoch as 14 hex digits, then 128 random bits. Values
    sort by expiry, so each new one is stored beside the last (one page written, not one per
    random place in the key's index), and the one a POST takes is near it too."""
    return f"{int(expires.timestamp() * 1_000_000):014x}{secrets.token_urlsafe(16)}"


@dataclass(frozen=True)
class Signed:
    """An authenticated POST: the JWS, its payload and the signer's account (``None`` when
    signed with a ``jwk`` that has no account yet); ``cached``: the account came from the
    :class:`AccountCache`, so the nonce's transaction must find it unchanged."""

    jws: J.JWS
    account: state.Account | None
    key: J.PublicKey
    cached: bool = False

    @property
    def post_as_get(self) -> bool:
        return self.jws.payload == b""

    def payload(self) -> dict[str, Any]:
        return self.jws.payload_json()

    def require_account(self) -> state.Account:
        if self.account is None:
            raise Problem.account_does_not_exist()
        return self.account


class Acme:
    """The ACME front-end's state for one process."""

    def __init__(
        self,
        ports: AcmePorts,
        settings: AcmeSettings,
        *,
        external_url: str,
        testing: TestingConfig,
    ) -> None:
        self.settings = settings
        #: The ports of :mod:`protocols.acme.ports`, and nothing else of the core.
        self.service = ports.service
        self.records = ports.records
        self.policy = ports.templates
        self.clock = ports.clock
        self.store = ports.transactions
        self.external_url = external_url
        self.testing = testing
        #: ACME state statements, chosen once by the store's dialect and its repository
        #: choice (repository.py): Core whenever the core store runs Core.
        self.repo: AcmeRepository = open_repository(
            self.store.dialect_name, raw_sqlite=self.store.raw_sqlite
        )
        self.base = external_url + "/acme"
        self.limiter = RateLimiter(settings.rate_limit_window)
        self.accounts = AccountCache()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- URLs (absolute, from configuration: protocols.md 0.3) ---------------------------------

    def url(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def now(self) -> datetime:
        return self.clock.now()

    def spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        """Run ``coro`` in the background (kept referenced until done)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- nonces (RFC 8555 §6.5) ----------------------------------------------------------------

    async def new_nonce(self) -> str:
        now = self.now()
        purge = now if secrets.randbelow(100) == 0 else None
        expires = now + timedelta(seconds=self.settings.nonce_lifetime)
        value = nonce_value(expires)
        try:
            await self.store.write(self.repo.issue_nonce, value, expires, purge)
        except StoreUnavailable:
            # Database down (issue #12): answer newNonce and errors with a nonce anyway. It is
            # not recorded, so it is never accepted (only recorded nonces are, §6.5): a POST
            # with it gets serverInternal + Retry-After during the outage, badNonce after it
            # (which clients retry with the fresh nonce that answer carries).
            pass
        return value

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(
        self,
        request: web.Request,
        *,
        want_jwk: bool = False,
        either: bool = False,
        terms: bool = True,
    ) -> Signed:
        """RFC 8555 §6.2-§6.5 for one POST. ``want_jwk``: newAccount; ``either``: revokeCert;
        ``terms``: refuse an account that has not agreed to the current terms of service
        (§7.3.3; the account resource and revokeCert stay open so it can agree or revoke)."""
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != JOSE:
            raise Problem.malformed(f"Content-Type must be {JOSE}", 415)
        again = _PLAIN in request  # the second pass: the limits were counted in the first
        if not again:
            self.limiter.hit(f"ip:{request.remote}", self.settings.rate_limit_ip)
        body = await request.read()
        jws = J.parse_jws(body)
        J.check_account_header(jws, want_jwk=want_jwk and not either)
        if jws.url != self.url_of(request):
            raise Problem.unauthorized("JWS 'url' does not match the request URL")
        thumb = None
        key: J.PublicKey | None = None
        if jws.kid is None:
            if not either and not want_jwk:
                raise Problem.malformed("this request must be signed with a 'kid' header")
            key = J.load_jwk(jws.jwk)
            thumb = J.thumbprint(jws.jwk or {})
        account_id = self._account_id(jws.kid) if jws.kid is not None else None
        if jws.nonce is None:
            raise Problem.bad_nonce("JWS has no anti-replay nonce")
        cached = False
        if account_id is not None:
            account = None if again else self.accounts.get(account_id)
            cached = account is not None
            if account is None:
                account = await self.store.read(self.repo.get_account, account_id)
                if account is None:
                    raise Problem.account_does_not_exist("no account at this 'kid'")
                self.accounts.put(account)
            key = J.load_jwk(account.jwk)
        else:
            assert thumb is not None  # no 'kid': signed with a 'jwk', thumbprinted above
            account = await self.store.read(self.repo.account_by_thumbprint, thumb)
        assert key is not None
        try:
            J.verify(jws, key)
        except Problem:
            if cached:  # perhaps signed with a key rolled over elsewhere: read the account
                self.accounts.forget(account_id or "")
                raise AccountChanged(account_id) from None
            raise
        signed = Signed(jws, account, key, cached)
        # The nonce is taken later, in the same transaction as the handler's first write
        # (:meth:`write`), or by the handler wrapper for read-only requests; nothing is
        # committed or answered before it was taken.
        request[_SIGNED] = signed
        if account is not None:
            if account.status != "valid":
                raise Problem.unauthorized(f"account is {account.status}", 401)
            if not again:
                self.limiter.hit(f"account:{account.id}", self.settings.rate_limit_account)
            if terms and self.terms_outdated(account):
                raise self.terms_problem(
                    "the terms of service have changed: agree to them by updating the account"
                    ' with "termsOfServiceAgreed": true'
                )
        return signed

    # -- terms of service (RFC 8555 §7.3, §7.3.3) ----------------------------------------------

    def terms_outdated(self, account: state.Account) -> bool:
        """Agreement is required and the account has not agreed to the current terms (their
        URL is their version: a new URL is a new version)."""
        return self.settings.terms_required and account.tos_agreed != self.settings.terms_of_service

    def terms_problem(self, detail: str) -> Problem:
        """403 userActionRequired with ``Link: rel="terms-of-service"`` and an ``instance``
        page telling a person how to agree."""
        return Problem.user_action_required(
            detail, terms=self.settings.terms_of_service, instance=self.url("terms")
        )

    async def write(self, request: web.Request, body: Any, *args: Any, **kw: Any) -> Any:
        """Run a write ``body`` for an authenticated POST; its transaction also takes the
        request's nonce (RFC 8555 §6.5: single use, across instances) unless already taken,
        and nothing is written when the nonce is bad, or when the signer's cached account no
        longer reads the same (:class:`AccountChanged`)."""
        signed: Signed | None = request.get(_SIGNED)
        if signed is None or _FRESH in request:
            return await self.store.write(body, *args, **kw)
        now = self.now()
        expires = now + timedelta(seconds=self.settings.nonce_lifetime)
        fresh = nonce_value(expires)
        expect = signed.account if signed.cached else None
        ok, result = await self.store.write(
            self.repo.with_nonce, signed.jws.nonce, fresh, expires, now, body, args, kw, expect
        )
        if not ok and expect is not None:
            # a stale copy, or a bad nonce: the second pass, from the database, tells which
            self.accounts.forget(expect.id)
            raise AccountChanged(expect.id)
        request[_FRESH] = fresh
        if not ok:
            raise Problem.bad_nonce()
        return result

    async def read(self, request: web.Request, body: Any, *args: Any, **kw: Any) -> Any:
        """A POST's read-only ``body``, in the transaction that takes the request's nonce
        while that is still to be taken (then one transaction instead of a read and the
        nonce's own at :meth:`finish`), else a plain read. Why it is safe: ``body`` only
        reads, the nonce would be taken anyway (§6.5, errors included), and a bad one is
        ``badNonce`` whichever of the two comes first."""
        signed: Signed | None = request.get(_SIGNED)
        if signed is None or _FRESH in request:
            return await self.store.read(body, *args, **kw)
        return await self.write(request, body, *args, **kw)

    async def take_nonce(self, request: web.Request) -> None:
        """Take the nonce of a read-only POST (or of a failed one), issuing the next."""
        await self.write(request, state.nothing)

    def _account_id(self, kid: str) -> str:
        prefix = self.url("acct") + "/"
        if not kid.startswith(prefix) or "/" in kid[len(prefix) :]:
            raise Problem.account_does_not_exist("'kid' is not an account URL of this server")
        return kid[len(prefix) :]

    def url_of(self, request: web.Request) -> str:
        return self.external_url + request.raw_path.split("?")[0]

    # -- responses -----------------------------------------------------------------------------

    def links(self, request: web.Request) -> list[str]:
        directory = request.get("acme_directory") or self.url("directory")
        return [f'<{directory}>;rel="index"']

    async def reply(
        self,
        request: web.Request,
        body: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        links: list[str] | None = None,
        content_type: str = "application/json",
    ) -> web.Response:
        response = web.Response(
            status=status,
            body=body if isinstance(body, bytes) else dumps(body),
            content_type=content_type,
        )
        await self._decorate(request, response, links)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    async def _decorate(
        self, request: web.Request, response: web.Response, links: list[str] | None
    ) -> None:
        for link in [*self.links(request), *(links or [])]:
            response.headers.add("Link", link)

    async def problem(self, request: web.Request, problem: Problem) -> web.Response:
        response = web.Response(
            status=problem.status,
            body=dumps(problem.document()),
            content_type="application/problem+json",
        )
        await self._decorate(request, response, problem.links)
        for name, value in problem.headers.items():
            response.headers[name] = value
        return response

    async def finish(self, request: web.Request, response: web.Response) -> web.Response:
        """Every POST (and newNonce) answer carries a fresh nonce, errors included (§6.5); a
        read-only POST's nonce is taken here, and a bad one turns the answer into badNonce."""
        if request.method not in ("POST", "HEAD") and _FRESH not in request:
            return response
        try:
            if _FRESH not in request:
                if _SIGNED in request:
                    try:
                        await self.take_nonce(request)
                    except Problem as bad:
                        response = await self.problem(request, bad)
                else:
                    request[_FRESH] = await self.new_nonce()
        except AccountChanged:
            raise
        except StoreUnavailable:  # logged once per outage by the store; no traceback per request
            return response
        except Exception:  # the store is down: still answer, without a nonce
            log.exception("could not issue a nonce (request id %s)", request.get("request_id"))
            return response
        response.headers["Replay-Nonce"] = request[_FRESH]
        return response


Handler = Callable[[Acme, web.Request], Awaitable[web.StreamResponse]]
ACME: web.AppKey[Acme] = web.AppKey("acme", Acme)


def handler(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler so every failure is a problem document (never a bare 500)."""

    @functools.wraps(fn)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        acme = request.app[ACME]
        try:
            return await attempt(acme, request)
        except AccountChanged:
            # authenticated with a cached account that changed: nothing was taken or written;
            # once more, reading the account from the database
            request[_PLAIN] = True
            request.pop(_SIGNED, None)
            return await attempt(acme, request)

    async def attempt(acme: Acme, request: web.Request) -> web.StreamResponse:
        try:
            response = await fn(acme, request)
        except Problem as problem:
            response = await acme.problem(request, problem)
        except CertgateError as exc:
            response = await acme.problem(request, problem_from(exc))
        except (asyncio.CancelledError, web.HTTPException, AccountChanged):
            raise
        except Exception:
            log.exception("ACME handler failed (request id %s)", request.get("request_id"))
            rid = request.get("request_id")
            response = await acme.problem(
                request, Problem.server_internal(f"internal error (request id {rid})")
            )
        assert isinstance(response, web.Response)
        return await acme.finish(request, response)

    return wrapped
