"""The web console under ``/console/`` (issue #16): a small client of the admin API.

The server side is only this: the sign-in page or the application shell, the session cookie
and the static files. Everything the console shows comes from ``/api/v1`` as JSON and is built
in the browser with DOM calls (``static/*.js``), never by parsing HTML made from data: a CSR's
subject is chosen by whoever sends the request.

Session: ``POST /console/login`` takes the token (form field ``token``) once, checks it as the
API would and stores it in cookie ``certgate_console`` (HttpOnly, Secure, SameSite=Strict), so
script never holds it. The API accepts that cookie in place of ``Authorization: Bearer``, but a
cookie-authenticated request other than GET/HEAD must carry ``X-CSRF-Token`` (an HMAC of the
token, from ``GET /api/v1/whoami``): a cross-site page can make the browser send the cookie, it
cannot read the CSRF value. Sign-in and sign-out check that the request comes from this origin
(``Origin``, else ``Referer``) against login CSRF.

Every console response carries a strict Content-Security-Policy (no inline script or style,
no eval, no framing), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``;
pages are ``Cache-Control: no-store``. The console is served only on a TLS main listener
(``[server.tls]``): the cookie is ``Secure``.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from gateway.admin.plugin import Role
from gateway.admin.tokens import AdminTokens, TokenRejected
from gateway.server.admin.auth import COOKIE_NAME, CSRF_HEADER, csrf_token

COOKIE = COOKIE_NAME
PREFIX = "/console"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: The static files by name, with their media types: nothing else under /console/static/.
STATIC_TYPES = {
    "console.css": "text/css",
    "api.js": "text/javascript",
    "dom.js": "text/javascript",
    "app.js": "text/javascript",
    "views.js": "text/javascript",
    "inventory.js": "text/javascript",
    "charts.js": "text/javascript",
    "login.js": "text/javascript",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TokenCheck = Callable[[web.Request, str], Awaitable[tuple[str, Role] | None]]
TOKEN_CHECK: web.AppKey[TokenCheck] = web.AppKey("console_token_check")


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _secured(response: web.StreamResponse, *, page: bool = True) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store" if page else "no-cache"
    return response


def _page(name: str, status: int = 200, message: str = "") -> web.StreamResponse:
    text = _static(name).decode()
    if message:  # fixed wording from this module, escaped all the same
        text = text.replace(
            "<!--message-->", f'<p class="error" role="alert">{html.escape(message)}</p>'
        )
    return _secured(web.Response(text=text, status=status, content_type="text/html"))


async def _check_with_tokens(request: web.Request, token: str) -> tuple[str, Role] | None:
    """The token's (name, role) when it is live, else None (unknown, expired, revoked): the
    check the admin API's authentication makes (:func:`gateway.server.admin.auth.authenticate`
    calls the same :meth:`AdminTokens.authenticate`)."""
    from gateway.server.app import components_of

    components = components_of(request.app)
    tokens = AdminTokens(components.store, components.store, components.clock)
    try:
        record = await tokens.authenticate(token)
    except TokenRejected:
        return None
    return record.name, record.role


async def _session(request: web.Request) -> tuple[str, Role] | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    return await request.app[TOKEN_CHECK](request, token)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: web.Request, external_url: str) -> bool:
    """The request says it comes from a page of this origin (``Origin``, or ``Referer`` when
    there is no usable ``Origin``): the host it was sent to, or the configured external URL."""
    origin = request.headers.get("Origin", "")
    if not origin or origin == "null":
        referer = request.headers.get("Referer", "")
        if not referer:
            return False
        origin = _origin_of(referer)
    allowed = {f"{request.scheme}://{request.host}".lower(), _origin_of(external_url)}
    return origin.lower() in allowed


def _on_a_front_end_listener(request: web.Request) -> bool:
    """The request came in on a front-end's own listener (EST's port), which serves the same
    application: the console, like the API, is the main listener's only."""
    from gateway.server.app import LISTENERS

    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
    return any(lst.port and lst.port == port for lst in request.app.get(LISTENERS, []))


def _main_listener_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if _on_a_front_end_listener(request):
            return _secured(web.Response(status=404, text="the console is on the main listener\n"))
        return await handler(request)

    return guarded


def _cookie(response: web.StreamResponse, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        COOKIE, value, path="/", secure=True, httponly=True, samesite="Strict", max_age=max_age
    )


def add_console_routes(
    app: web.Application, external_url: str, token_check: TokenCheck | None = None
) -> None:
    """Mount the console on ``app`` (the main listener's, when it speaks TLS).

    ``token_check`` checks a presented token the way the admin API does; by default through
    :class:`gateway.admin.tokens.AdminTokens`."""
    app[TOKEN_CHECK] = token_check or _check_with_tokens

    async def index(request: web.Request) -> web.StreamResponse:
        if await _session(request) is None:
            return _page("login.html")
        return _page("app.html")

    async def login(request: web.Request) -> web.StreamResponse:
        if not same_origin(request, external_url):
            return _page("login.html", 403, "Sign-in must come from this console's own page.")
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token.strip():
            return _page("login.html", 400, "Paste an API token to sign in.")
        if await request.app[TOKEN_CHECK](request, token.strip()) is None:
            return _page("login.html", 401, "That token was not accepted.")
        response = web.HTTPSeeOther(f"{PREFIX}/")
        _cookie(response, token.strip())
        _secured(response)
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(COOKIE, "")
        presented = request.headers.get(CSRF_HEADER, "").encode("utf-8", "replace")
        csrf_ok = bool(token) and hmac.compare_digest(presented, csrf_token(token).encode())
        if not (csrf_ok or same_origin(request, external_url)):
            return _page("login.html", 403, "Sign-out must come from this console's own page.")
        response = web.HTTPSeeOther(f"{PREFIX}/")
        _cookie(response, "", max_age=0)
        _secured(response)
        raise response

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_TYPES:
            return _secured(web.Response(status=404, text="not found\n"))
        body = _static(name)
        response = web.Response(body=body, content_type=STATIC_TYPES[name], charset="utf-8")
        return _secured(response, page=False)

    async def bare(request: web.Request) -> web.StreamResponse:
        response = web.HTTPMovedPermanently(f"{PREFIX}/")
        _secured(response)
        raise response

    async def not_found(request: web.Request) -> web.StreamResponse:
        return _secured(web.Response(status=404, text="no such console page\n"))

    only = _main_listener_only
    app.router.add_get(PREFIX, only(bare))
    app.router.add_get(f"{PREFIX}/", only(index))
    app.router.add_post(f"{PREFIX}/login", only(login))
    app.router.add_post(f"{PREFIX}/logout", only(logout))
    app.router.add_get(f"{PREFIX}/static/{{name}}", only(static))
    app.router.add_route("*", f"{PREFIX}/{{tail:.*}}", only(not_found))
