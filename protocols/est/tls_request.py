"""Ask for a TLS client certificate without letting OpenSSL judge it (RFC 7030 §3.3.2, issue #12).

EST labels trust different issuers (the gateway's CA, manufacturer or bootstrap CAs), so the
one listener cannot know in the handshake which anchors apply: that depends on the URL. With
``CERT_OPTIONAL`` OpenSSL aborts the handshake, without an alert the client understands and
before any request is seen, for a certificate from an issuer outside the union of all labels'
anchors. A factory certificate on a label that also accepts HTTP Basic then can never fall back
to Basic, and the operator sees nothing.

So the listener requests a certificate (``SSL_VERIFY_PEER``) with a verify callback that lets
OpenSSL's chain verdict pass; OpenSSL still checks the client's CertificateVerify signature,
i.e. that the client holds the certificate's key. The certificate then counts for nothing
until :func:`protocols.est.auth.authenticate` has verified it against the requested label's own
anchors. Python's ``ssl`` has no verify-callback API (bpo-31242), so the callback is installed
with ctypes on the context's ``SSL_CTX``, found and checked against values read back through
the ``ssl`` module; when that check fails the context keeps OpenSSL's verification and the
caller logs that unknown issuers will fail the handshake.
"""

from __future__ import annotations

import _ssl  # the extension module linking the process's libssl, whose SSL_CTX we adjust
import ctypes
import ssl
import sys
from typing import Any

_SSL_VERIFY_PEER = 0x01
#: The verify callback: ``int (*)(int preverify_ok, X509_STORE_CTX *)``; 1 continues.
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _libssl() -> Any:
    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    lib.ERR_clear_error.restype = None
    lib.ERR_clear_error.argtypes = []
    return lib


try:
    _LIB: Any = _libssl()
except (OSError, AttributeError):  # symbols not reachable (e.g. a statically linked _ssl)
    _LIB = None


def _accept(preverify_ok: int, store_ctx: Any) -> int:
    if not preverify_ok:
        # The failed check left its reason on this thread's OpenSSL error queue; left there,
        # Python's next SSL_read on the connection would report it as a fatal SSLError.
        _LIB.ERR_clear_error()
    return 1


#: Kept alive for the life of the process: OpenSSL holds a raw pointer to it.
_ACCEPT = _VERIFY_CALLBACK(_accept)


def request_client_certificates(ctx: ssl.SSLContext) -> bool:
    """Make ``ctx`` (a server context) request a client certificate and complete the handshake
    whoever issued it. Returns False, leaving ``ctx`` unchanged, where this cannot be done
    safely (not CPython, or the context's ``SSL_CTX`` cannot be located and confirmed)."""
    lib = _LIB
    if sys.implementation.name != "cpython" or lib is None:
        return False
    # CPython's PySSLContext starts with PyObject_HEAD, then ``SSL_CTX *ctx``.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer:
        return False
    saved = ctx.verify_mode
    try:
        # Confirm the pointer: two verify modes and the options must read back as set.
        for mode, expected in ((ssl.CERT_REQUIRED, 0x03), (ssl.CERT_OPTIONAL, 0x01)):
            ctx.verify_mode = mode
            if lib.SSL_CTX_get_verify_mode(pointer) != expected:
                return False
        if lib.SSL_CTX_get_options(pointer) != int(ctx.options):
            return False
    finally:
        ctx.verify_mode = saved
    lib.SSL_CTX_set_verify(pointer, _SSL_VERIFY_PEER, _ACCEPT)
    return True
