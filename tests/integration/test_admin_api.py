"""The admin REST API (issue #16 items 1-2) on a site made by ``certgate init DIR`` (TLS main
listener, plain device listener, every protocol on), served in-process on real sockets and
called over HTTPS: tokens from the CLI, 401 and 403 problem documents, the approval queue
(approve, deny with a reason), revocation reaching the CRL (read by openssl), inventory search
and its pages, the audit trail naming the token, the console cookie's CSRF rule, and the plain
listener refusing the API."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from gateway.server.admin.auth import csrf_token
from tests.admin_helpers import Api, Site, is_problem, make_site, serving
from tests.helpers import require_tool


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("admin"))


@pytest.fixture
async def api(site: Site) -> AsyncIterator[Api]:
    ctx = ssl.create_default_context(cafile=str(site.root))
    async with serving(site):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            yield Api(site, session)


# --- authentication and roles ----------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "cg_unknown", "expired", "revoked", "not-a-token"])
async def test_no_or_dead_tokens_get_a_401_problem(api: Api, token: str | None) -> None:
    status, headers, body = await api.call("GET", "/requests", token)
    is_problem(status, headers, body, 401)
    assert headers["WWW-Authenticate"].startswith('Bearer realm="certgate"')
    if token in ("expired", "revoked"):
        assert token in body["detail"]


async def test_a_role_too_low_gets_a_403_problem(api: Api) -> None:
    pending = api.site.pending[3]
    for method, path, token in [
        ("POST", f"/requests/{pending}/approve", "viewer"),
        ("POST", f"/certificates/{api.site.serials[2]}/revoke", "viewer"),
        ("GET", "/tokens", "approver"),
        ("POST", "/tokens", "approver"),
    ]:
        status, headers, body = await api.call(method, path, token, body={})
        is_problem(status, headers, body, 403)
        assert token in body["detail"]
    status, _, body = await api.call("GET", f"/requests/{pending}", "viewer")
    assert status == 200 and body["state"] == "pending"  # nothing changed


async def test_whoami_and_the_openapi_document(api: Api) -> None:
    status, _, me = await api.call("GET", "/whoami", "approver")
    assert status == 200 and me == {
        "name": "approver",
        "role": "approver",
        "expires_at": None,
        "csrf": None,
    }
    status, _, doc = await api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    for path in ("/requests/{id}/approve", "/certificates/{serial}/pem", "/audit", "/status"):
        assert path in doc["paths"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            for code in ("400", "401", "403"):
                content = op["responses"][code]["content"]["application/problem+json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, method)
            assert any(c.startswith("2") for c in op["responses"]), (path, method)


# --- the approval queue -----------------------------------------------------------------------


async def test_show_gives_the_csr_the_template_rules_and_the_trail(api: Api) -> None:
    status, _, shown = await api.call("GET", f"/requests/{api.site.pending[3]}", "viewer")
    assert status == 200
    assert shown["csr"] == {
        "subject": "CN=client3",
        "sans": ["dns:client3.example.test"],
        "key": {"type": "EC", "curve": "secp256r1", "size": 256},
    }
    assert shown["template_rules"]["name"] == "approval-required"
    assert shown["template_rules"]["manager_approval"] is True
    assert [e["event"] for e in shown["audit"]][:2] == ["request.received", "request.pending"]


async def test_approve_issues_and_the_audit_names_the_token(api: Api) -> None:
    rid = api.site.pending[0]
    status, _, decided = await api.call(
        "POST", f"/requests/{rid}/approve", "approver", body={"reason": "known host"}
    )
    assert status == 200, decided
    assert decided["outcome"]["status"] == "issued"
    assert decided["request"]["state"] == "issued"
    serial = decided["outcome"]["serial"]
    status, _, cert = await api.call("GET", f"/certificates/{serial}", "viewer")
    assert status == 200 and cert["request_id"] == rid and cert["status"] == "valid"
    status, _, again = await api.call("POST", f"/requests/{rid}/approve", "approver")
    assert status == 409 and again["status"] == 409
    status, _, trail = await api.call(
        "GET", f"/audit?request_id={rid}&actor=token:approver", "viewer"
    )
    assert [e["event"] for e in trail["items"]] == ["request.approval-note", "request.approved"]
    assert trail["items"][0]["detail"] == {"reason": "known host"}


async def test_deny_needs_a_reason_and_records_it(api: Api) -> None:
    rid = api.site.pending[1]
    status, headers, body = await api.call("POST", f"/requests/{rid}/deny", "approver", body={})
    is_problem(status, headers, body, 400)
    assert body["detail"].startswith("body.reason: ")
    status, _, decided = await api.call(
        "POST", f"/requests/{rid}/deny", "approver", body={"reason": "not one of ours"}
    )
    assert status == 200
    assert decided["outcome"]["status"] == "denied"
    assert decided["request"]["state"] == "denied"
    assert "not one of ours" in decided["request"]["denial_detail"]
    assert "token:approver" in decided["request"]["denial_detail"]
    status, _, trail = await api.call("GET", f"/audit?request_id={rid}", "viewer")
    events = {(e["event"], e["actor"]) for e in trail["items"]}
    assert ("request.denial-requested", "token:approver") in events
    assert any(e == "request.denied" for e, _ in events)


async def test_unknown_requests_and_bad_bodies(api: Api) -> None:
    status, headers, body = await api.call("GET", "/requests/no-such-id", "viewer")
    is_problem(status, headers, body, 404)
    status, headers, body = await api.call(
        "POST",
        f"/requests/{api.site.pending[3]}/approve",
        "approver",
        headers={"Content-Type": "application/json"},
        body="{not json",
    )
    is_problem(status, headers, body, 400)  # a JSON string, not an object
    async with api.session.post(
        f"{api.base}/requests/{api.site.pending[3]}/deny",
        data=b"{oops",
        headers={"Authorization": f"Bearer {api.site.tokens['approver']}"},
    ) as resp:
        problem = await resp.json(content_type=None)
        assert resp.status == 400 and problem["detail"].startswith("body: not valid JSON")
    async with api.session.post(  # JSON null is a body, and not the object the schema wants
        f"{api.base}/certificates/{api.site.serials[2]}/revoke",
        data=b"null",
        headers={"Authorization": f"Bearer {api.site.tokens['approver']}"},
    ) as resp:
        problem = await resp.json(content_type=None)
        assert resp.status == 400 and problem["detail"] == "body: must be object"


# --- inventory, revocation, the CRL -----------------------------------------------------------


async def test_revoke_puts_the_serial_on_the_crl(api: Api, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    serial = api.site.serials[0]
    status, _, revoked = await api.call(
        "POST", f"/certificates/{serial}/revoke", "approver", body={"reason": "keyCompromise"}
    )
    assert status == 200 and revoked["status"] == "revoked"
    assert revoked["revocation_reason"] == "key_compromise"
    status, _, _ = await api.call("POST", f"/certificates/{serial}/revoke", "approver", body={})
    assert status == 409
    async with api.session.get(f"https://localhost:{api.site.port}/ca/crl") as resp:
        assert resp.status == 200
        (tmp_path / "crl.der").write_bytes(await resp.read())
    text = subprocess.run(
        [openssl, "crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Serial Number: {serial.upper().zfill(len(serial) + len(serial) % 2)}" in text
    assert "Key Compromise" in text
    status, _, trail = await api.call("GET", f"/audit?serial={serial}&event=certificate", "viewer")
    assert ("certificate.revocation-requested", "token:approver") in {
        (e["event"], e["actor"]) for e in trail["items"]
    }


async def test_search_filters_and_pages(api: Api) -> None:
    www, apis, mail = api.site.serials

    async def serials(query: str) -> list[str]:
        status, _, page = await api.call("GET", f"/certificates?{query}", "viewer")
        assert status == 200, page
        return [c["serial"] for c in page["items"]]

    assert await serials("san=api.example") == [apis]
    assert await serials("subject=MAIL.EXAMPLE.TEST") == [mail]
    assert await serials(f"serial={www.upper()}") == [www]
    assert await serials("serial=not-hex") == []
    assert set(await serials("template=tls-server")) >= {apis, mail}
    later = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    assert set(await serials(f"expires_after={later.replace('+00:00', 'Z')}")) == set()
    # pages of one: every certificate once, in the order of one big page
    status, _, whole = await api.call("GET", "/certificates?limit=1000", "viewer")
    seen, cursor = [], ""
    while True:
        status, _, page = await api.call("GET", f"/certificates?limit=1{cursor}", "viewer")
        seen += [c["serial"] for c in page["items"]]
        if page["next"] is None:
            break
        cursor = f"&cursor={page['next']}"
    assert seen == [c["serial"] for c in whole["items"]] and len(seen) >= 3
    for query, name in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=lost", "status"),
        ("expires_before=tomorrow", "expires_before"),
        ("cursor=xyz", "cursor"),
    ]:
        status, headers, body = await api.call("GET", f"/certificates?{query}", "viewer")
        is_problem(status, headers, body, 400)
        assert body["detail"].startswith(f"{name}: ")


async def test_pem_expiring_templates_and_status(api: Api) -> None:
    serial = api.site.serials[1]
    status, headers, pem = await api.call("GET", f"/certificates/{serial}/pem", "viewer")
    assert status == 200 and headers["Content-Type"].startswith("application/pem-certificate-chain")
    assert pem.count(b"-----BEGIN CERTIFICATE-----") >= 2  # the certificate and its issuer
    status, _, chart = await api.call("GET", "/certificates/expiring?weeks=60", "viewer")
    assert status == 200 and len(chart["items"]) == 60
    assert sum(w["count"] for w in chart["items"]) >= 2
    # 60 weeks cover every test certificate's life: each falls due once, no later than the
    # week it expires.
    assert sum(w["due"] for w in chart["items"]) == sum(w["count"] for w in chart["items"])
    weeks = [w["week_start"] for w in chart["items"]]
    first_due = min(i for i, w in enumerate(chart["items"]) if w["due"])
    first_expiry = min(i for i, w in enumerate(chart["items"]) if w["count"])
    assert first_due <= first_expiry and weeks == sorted(weeks)
    status, _, templates = await api.call("GET", "/templates", "viewer")
    assert "approval-required" in {t["name"] for t in templates["items"]}
    status, _, one = await api.call("GET", "/templates/tls-server", "viewer")
    assert status == 200 and one["summary"]["name"] == "tls-server"
    status, _, state = await api.call("GET", "/status", "viewer")
    assert status == 200
    assert set(state["protocols"]) == {"acme", "est", "scep", "wstep"}
    assert state["connectors"] == [{"name": "local", "ok": True, "detail": "ok"}]
    assert state["pending"]["approval"] >= 1
    assert {"main", "plain"} <= {lst["name"] for lst in state["listeners"]}


# --- tokens over the API, the console cookie, the plain listener ------------------------------


async def test_admin_makes_and_revokes_tokens_over_the_api(api: Api) -> None:
    status, _, made = await api.call(
        "POST", "/tokens", "admin", body={"name": "robot", "role": "viewer", "expires": "1d"}
    )
    assert status == 201 and made["token"].startswith("cg_") and made["expires_at"]
    status, _, listed = await api.call("GET", "/tokens", "admin")
    assert made["token"] not in json.dumps(listed)
    assert "robot" in {t["name"] for t in listed["items"]}
    status, _, me = await api.call("GET", "/whoami", made["token"])
    assert status == 200 and me["name"] == "robot"
    status, _, gone = await api.call("DELETE", "/tokens/robot", "admin")
    assert status == 200 and gone["state"] == "revoked"
    status, _, _ = await api.call("GET", "/whoami", made["token"])
    assert status == 401
    status, _, trail = await api.call("GET", "/audit?event=admin.token&actor=token:admin", "viewer")
    assert [e["event"] for e in trail["items"]][:2] == [
        "admin.token.revoked",
        "admin.token.created",
    ]


async def test_a_cookie_session_must_send_its_csrf_value_to_change_anything(api: Api) -> None:
    token = api.site.tokens["approver"]
    cookie = {"Cookie": f"certgate_console={token}"}
    status, _, me = await api.call("GET", "/whoami", headers=cookie)
    assert status == 200 and me["csrf"] == csrf_token(token)
    rid = api.site.pending[2]
    status, headers, body = await api.call(
        "POST", f"/requests/{rid}/deny", headers=cookie, body={"reason": "csrf"}
    )
    is_problem(status, headers, body, 403)
    assert "X-CSRF-Token" in body["detail"]
    status, _, body = await api.call(
        "POST",
        f"/requests/{rid}/deny",
        headers={**cookie, "X-CSRF-Token": "0" * 64},
        body={"reason": "csrf"},
    )
    assert status == 403
    status, _, decided = await api.call(
        "POST",
        f"/requests/{rid}/deny",
        headers={**cookie, "X-CSRF-Token": me["csrf"]},
        body={"reason": "from the console"},
    )
    assert status == 200 and decided["outcome"]["status"] == "denied"


async def test_the_plain_device_listener_does_not_serve_the_api(api: Api) -> None:
    url = f"http://127.0.0.1:{api.site.plain}/api/v1/status"
    headers = {"Authorization": f"Bearer {api.site.tokens['admin']}"}
    async with api.session.get(url, headers=headers) as resp:
        assert resp.status == 404
        assert "use https://" in await resp.text()


async def test_the_est_listener_does_not_serve_the_api(api: Api) -> None:
    url = f"https://localhost:{api.site.est}/api/v1/status"
    headers = {"Authorization": f"Bearer {api.site.tokens['admin']}"}
    async with api.session.get(url, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 404, text
        assert "viewer" not in text and "pending" not in text


async def test_unknown_paths_and_methods_are_problems(api: Api) -> None:
    status, headers, body = await api.call("GET", "/nothing/here", "viewer")
    is_problem(status, headers, body, 404)
    status, headers, body = await api.call("PUT", "/requests", "viewer")
    is_problem(status, headers, body, 405)
    assert headers["Allow"] == "GET"


async def test_head_answers_as_get_without_a_body(api: Api) -> None:
    """HEAD on a GET resource (RFC 9110 §9.3.2): the same authentication and status, no body."""
    url = api.base + "/certificates"
    async with api.session.head(url) as resp:
        assert resp.status == 401 and await resp.read() == b""
    viewer = {"Authorization": f"Bearer {api.site.tokens['viewer']}"}
    async with api.session.head(url, headers=viewer) as resp:
        assert resp.status == 200 and await resp.read() == b""
        assert resp.headers["Content-Type"].startswith("application/json")
