"""The enrollment service (see :mod:`gateway.service.facade` for the parts and their modules).

Everything callers use is exported here, so ``from gateway.service import X`` names the
public surface; the modules behind it are the service's own business.
"""

from gateway.errors import UnknownTemplate
from gateway.model import RequestKind
from gateway.service.core import APPROVAL_RETRY_AFTER, CA_RETRY_AFTER
from gateway.service.facade import EnrollmentService
from gateway.service.records import local_requester
from gateway.service.renewal import DueCertificate
from gateway.service.retries import MAX_ATTEMPTS, request_digest

__all__ = [
    "APPROVAL_RETRY_AFTER",
    "CA_RETRY_AFTER",
    "MAX_ATTEMPTS",
    "DueCertificate",
    "EnrollmentService",
    "RequestKind",
    "UnknownTemplate",
    "local_requester",
    "request_digest",
]
