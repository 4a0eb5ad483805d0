"""Finalize (RFC 8555 §7.4): exact identifier match, then the core decides.

The enrollment transaction id is the order id (``<order id>/<n>`` for the n-th retry after a
``badCSR``, so a corrected CSR is a new transaction while a repeat of the same finalize is
idempotent). Pending templates leave the order ``processing``; polls read the core's record.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import BadCSR, CertgateError, ErrorCode, PolicyDenied
from gateway.model import (
    Denied,
    EnrollmentRequest,
    Identifier,
    Issued,
    Outcome,
    Pending,
    Requester,
    RequestKind,
    serial_hex,
)
from gateway.pkix import load_csr
from protocols.acme import state
from protocols.acme.base import Acme, handler
from protocols.acme.errors import is_csr_rule, problem_for
from protocols.acme.messages import (
    AcmeIdentifier,
    NewOrder,
    Problem,
    csr_identifiers,
    parse_b64_der,
    parse_cert_id,
)
from protocols.acme.order_view import load_order, order_json
from protocols.acme.probe import probe_csr
from protocols.acme.supersede import supersede_older
from protocols.acme.validation import check_caa


def requester_of(account: state.Account) -> Requester:
    """The EAB principal when bound, else the account itself (template permissions)."""
    if account.principal is not None:
        return Requester(
            "acme", account.principal, "eab", verified_facts={"acme_account": account.id}
        )
    return Requester("acme", f"acme:account:{account.id}", "account")


def transaction_of(order: state.Order) -> str:
    return order.id if order.finalize_attempt == 0 else f"{order.id}/{order.finalize_attempt}"


def _identifiers(items: list[dict[str, str]]) -> frozenset[Identifier]:
    return frozenset(Identifier(i["type"], i["value"]) for i in items)


@lru_cache(maxsize=4)
def _probe_key(kind: str) -> Any:
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key(ec.SECP256R1())


def dry_run(acme: Acme, me: state.Account, template: str, new: NewOrder, now: datetime) -> None:
    """Ask the pure policy engine, before any challenge, whether it would issue these names
    for this requester and validity: raises :class:`PolicyDenied` naming the rule. A probe
    CSR carries the identifiers; denials of the probe's own key or subject are ignored by the
    caller (the real CSR is judged at finalize)."""
    tpl = acme.policy.template(template)
    kind = "ec" if "ec" in {a.value for a in tpl.key_policy.algorithms} else "rsa"
    csr = probe_csr(_probe_key(kind), [(i.type, i.value) for i in new.identifiers])
    request = EnrollmentRequest(
        csr=csr,
        template=template,
        requester=requester_of(me),
        transaction_id="probe",
        validated_identifiers=frozenset(Identifier(i.type, i.value) for i in new.identifiers),
        not_before=new.not_before,
        not_after=new.not_after,
    )
    decision = acme.policy.plan(
        request, request_id="probe", now=now, issuer_not_after=None, check_possession=False
    )
    plan = decision.plan
    if (new.not_after and plan.not_after != new.not_after) or (
        new.not_before and plan.not_before != new.not_before
    ):
        raise PolicyDenied("validity", "the template cannot issue exactly this validity")


@handler
async def finalize(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request)
    me = signed.require_account()
    order, status = await load_order(acme, signed, request.match_info["id"])
    if status != "ready":
        raise Problem.order_not_ready(f"order is {status}, not ready")
    try:
        csr = load_csr(parse_b64_der(signed.payload(), "csr"))
    except BadCSR as exc:
        raise Problem.bad_csr(exc.detail) from None
    wanted = {AcmeIdentifier(i["type"], i["value"]) for i in order.identifiers}
    if csr_identifiers(csr) != wanted:
        raise Problem.bad_csr("the CSR must name exactly the order's identifiers")
    if acme.settings.caa_identities:
        await recheck_caa(acme, me, order)
    prior = None
    if order.replaces:
        record = await acme.records.get_certificate(format(parse_cert_id(order.replaces)[1], "x"))
        prior = record.certificate if record is not None else None
    if not await acme.write(request, acme.repo.set_order, order.id, "pending", status="processing"):
        raise Problem.order_not_ready("order is already being finalized")
    enrollment = EnrollmentRequest(
        csr=csr,
        template=order.template,
        requester=requester_of(me),
        transaction_id=transaction_of(order),
        kind=RequestKind.REENROLLMENT if prior is not None else RequestKind.NEW,
        validated_identifiers=_identifiers(order.identifiers),
        prior_certificate=prior,
        not_before=order.not_before,
        not_after=order.not_after,
    )
    try:
        outcome = await acme.service.enroll(enrollment)
    except CertgateError as exc:
        await _fail(acme, order, exc)
        raise
    order, status, retry = await apply_outcome(acme, order, outcome, supersede=True)
    headers = {"Location": acme.url("order", order.id)}
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return await acme.reply(request, order_json(acme, order, status), headers=headers)


async def recheck_caa(acme: Acme, me: state.Account, order: state.Order) -> None:
    """CAA again at issuance (RFC 8659) for every dns name whose check is older than
    ``caa_recheck_after`` (a re-used authorization) or never ran (pre-authorized by EAB, or
    ``[testing] acme_always_valid``). A refusal is a 403 ``caa`` problem with one
    subproblem per refused name; the order stays ``ready`` so a client can finalize again
    once DNS allows it (a SERVFAIL is often transient)."""
    authzs = await acme.store.read(acme.repo.get_authzs, order.authz_ids, with_challenges=True)
    cutoff = acme.now() - timedelta(seconds=acme.settings.caa_recheck_after)
    due: list[tuple[state.Authz, str | None]] = []
    for authz in authzs:
        if authz.type != "dns":
            continue  # CAA governs domain names only (RFC 8659 §3)
        done = next((c for c in authz.challenges if c.status == "valid"), None)
        if done is not None and done.validated_at is not None and done.validated_at > cutoff:
            continue
        due.append((authz, done.type if done is not None else None))
    if not due:
        return
    errors = await asyncio.gather(*(check_caa(acme, a, m, me.id) for a, m in due))
    subproblems = [
        {**error, "identifier": {"type": "dns", "value": ("*." if a.wildcard else "") + a.value}}
        for (a, _), error in zip(due, errors, strict=True)
        if error is not None
    ]
    if subproblems:
        detail = "; ".join(str(p["detail"]) for p in subproblems)
        raise Problem.caa(f"CAA forbids issuance: {detail}", subproblems)


async def _fail(acme: Acme, order: state.Order, exc: CertgateError) -> None:
    if isinstance(exc, BadCSR):
        await _reopen(acme, order)
        return
    rule = exc.rule if isinstance(exc, PolicyDenied) else None
    doc = problem_for(exc.code, exc.detail, rule).document()
    await acme.store.write(acme.repo.set_order, order.id, "processing", status="invalid", error=doc)


async def _reopen(acme: Acme, order: state.Order) -> None:
    """Back to ``ready`` after a CSR problem, with a fresh transaction id for the next try."""
    await acme.store.write(
        acme.repo.set_order,
        order.id,
        "processing",
        status="pending",
        finalize_attempt=order.finalize_attempt + 1,
    )


async def apply_outcome(
    acme: Acme, order: state.Order, outcome: Outcome, *, supersede: bool = False
) -> tuple[state.Order, str, int | None]:
    """Record the core's outcome on the order: valid, processing (+Retry-After) or invalid;
    a CSR-rule denial re-opens the order and is raised as ``badCSR``. ``supersede`` (a
    finalize): once issued or pending, the order's older twins are superseded
    (:mod:`protocols.acme.supersede`), found in the transaction that records the outcome."""
    if isinstance(outcome, Issued):
        serial = serial_hex(outcome.certificate.serial_number)
        valid = _with(order, status="valid", certificate_serial=serial)
        values = {"status": "valid", "certificate_serial": serial}
        await _record(acme, valid, "processing", supersede, **values)
        return valid, "valid", None
    if isinstance(outcome, Pending):
        await _record(acme, order, None, supersede, request_id=outcome.request_id)
        return (
            order,
            "processing",
            max(1, min(outcome.retry_after, acme.settings.processing_retry_after)),
        )
    assert isinstance(outcome, Denied)
    if is_csr_rule(outcome.rule):
        await _reopen(acme, order)
        raise Problem.bad_csr(f"{outcome.rule}: {outcome.detail}")
    doc = problem_for(_code(outcome.code), outcome.detail, outcome.rule).document()
    await acme.store.write(acme.repo.set_order, order.id, "processing", status="invalid", error=doc)
    return _with(order, status="invalid", error=doc), "invalid", None


async def _record(
    acme: Acme, order: state.Order, expect: str | None, supersede: bool, **values: Any
) -> None:
    """Set ``values`` on an order the core answered (only while its status is ``expect``)."""
    if not supersede:
        await acme.store.write(acme.repo.set_order, order.id, expect, **values)
        return
    older = await acme.store.write(acme.repo.set_order_and_older, order, expect, **values)
    await supersede_older(acme, order, older)


def _code(value: str) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL


def _with(order: state.Order, **changes: Any) -> state.Order:
    return replace(order, **changes)


async def settle(acme: Acme, order: state.Order) -> tuple[state.Order, str, int | None]:
    """A ``processing`` order: read the core's record of its transaction (approval, CA)."""
    outcome = await acme.service.find_transaction("acme", transaction_of(order))
    if outcome is None:  # a crash between "processing" and the core's record: let it retry
        await _reopen(acme, order)
        return _with(order, status="pending"), "ready", None
    try:
        return await apply_outcome(acme, order, outcome)
    except Problem as problem:  # a CSR-rule denial recorded later: the order is ready again
        return _with(order, status="pending", error=problem.document()), "ready", None
