"""Microsoft certificate enrollment wire codecs, used by the CEP/CES front-end
(``protocols.wstep``) and the CES connector (``backends.ms_ces``).

* :mod:`.soap`     -- SOAP 1.2 envelopes, WS-Addressing, WS-Security UsernameToken, safe XML;
* :mod:`.wstrust`  -- MS-WSTEP: WS-Trust RequestSecurityToken and its responses and faults;
* :mod:`.xcep`     -- MS-XCEP: GetPolicies and its response;
* :mod:`.hresults` -- the HRESULTs of enrollment faults, by name;
* :mod:`.cms`      -- MS-WSTEP renewal requests (CMS SignedData signed by the old certificate).

The certs-only PKCS#7 that carries an issuer chain is CMS in general, not Microsoft's: it is
:mod:`gateway.pkix.certsonly`, shared with EST, SCEP and ACME.
"""
