"""The CEP endpoint (MS-XCEP §3.1.4.1 ``GetPolicies``): certgate's templates as enrollment
policies, for authenticated callers only, listing the CES URIs of this gateway
(MS-XCEP §3.1.4.1.3.4 ``CAURI``; which ones: :mod:`protocols.wstep.listeners`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from gateway.codecs.ms.wstrust import build_envelope
from gateway.codecs.ms.xcep import (
    ACTION_GET_POLICIES,
    ACTION_GET_POLICIES_RESPONSE,
    build_get_policies_response_body,
    parse_get_policies,
)
from gateway.errors import CertgateError, ErrorCode
from protocols.wstep.auth import authenticate
from protocols.wstep.errors import fault_for, fault_for_exception
from protocols.wstep.listeners import Listeners
from protocols.wstep.policies import policy_document
from protocols.wstep.ports import WstepContext
from protocols.wstep.settings import WSTEPSettings
from protocols.wstep.transport import (
    SOAPFault,
    bad_request,
    fault_response,
    read_envelope,
    soap_response,
)
from protocols.wstep.users import PasswordVerifier

log = logging.getLogger("certgate.wstep")


@dataclass
class CEPHandler:
    """aiohttp handler for ``POST <path>/CEP``."""

    context: WstepContext
    settings: WSTEPSettings
    verifier: PasswordVerifier
    listeners: Listeners

    async def handle(self, request: web.Request) -> web.Response:
        relates_to = None
        try:
            envelope = await read_envelope(request, self.settings)
            relates_to = envelope.message_id
            if envelope.action != ACTION_GET_POLICIES:
                raise bad_request(f"unsupported SOAP action {envelope.action[:120]!r}")
            try:
                parse_get_policies(envelope)
            except CertgateError as exc:
                raise bad_request(exc.detail) from None
            requester = await authenticate(
                request, envelope, self.settings, self.verifier, self.context.store
            )
            chain = await self.context.service.ca_chain()
            document = policy_document(
                list(self.context.policy.templates.values()),
                requester,
                issuing_ca=chain[0],
                ces_uris=self.listeners.ces_uris(request),
                friendly_name=self.settings.friendly_name,
                next_update_hours=self.settings.next_update_hours,
            )
            body = build_get_policies_response_body(document)
            return soap_response(
                build_envelope(ACTION_GET_POLICIES_RESPONSE, body, relates_to=relates_to)
            )
        except SOAPFault as error:
            return fault_response(error, relates_to)
        except CertgateError as exc:
            return fault_response(SOAPFault(fault_for_exception(exc)), relates_to)
        except Exception:
            log.exception("CEP request failed (request id %s)", request.get("request_id"))
            return fault_response(
                SOAPFault(fault_for(ErrorCode.INTERNAL, "internal error")), relates_to
            )
