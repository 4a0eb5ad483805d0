"""The local CA with ``key_store = "pkcs11"`` against a real SoftHSM2 token (issue #17 item 2).

In process: ``certgate init`` through the CLI's ``main(argv)``, the connector opened by
:func:`backends.local_ca.bootstrap.open_ca`. The token's attributes are read in a separate
Python process (its own PKCS#11 login, so this process's session is left alone). What the
gateway issues over EST and ACME with such a CA is in tests/interop/test_pkcs11_issuance.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from backends.local_ca.bootstrap import CAMaterial, open_ca
from backends.local_ca.issuer import Issuer
from backends.local_ca.pkcs11_store import Pkcs11KeyStore
from backends.local_ca.settings import KeyAlgorithm, LocalCASettings, parse_settings
from gateway.errors import CAUnavailable
from gateway.model import IssuancePlan
from tests.helpers import certgate, make_csr, openssl, write_config
from tests.softhsm_helpers import PIN_ENV, SoftToken, soft_token

LABEL = "ca-issuing"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    made = soft_token(tmp_path)
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    return made


def _settings(tmp: Path, token: SoftToken, algorithm: str = "ec-p256") -> LocalCASettings:
    text = f'key_algorithm = "{algorithm}"\n' + token.connector_keys()
    return parse_settings("local", tomllib.loads(text), str(tmp / "certgate.toml"))


def _config(tmp: Path, token: SoftToken, extra: str = "") -> Path:
    cfg = write_config(tmp)
    text = cfg.read_text().replace(
        'type = "local"\n', 'type = "local"\n' + token.connector_keys() + extra, 1
    )
    cfg.write_text(text)
    return cfg


_INSPECT = textwrap.dedent(
    """
    import json, sys, pkcs11
    from pkcs11 import Attribute, ObjectClass
    module, token_label, pin = sys.argv[1:4]
    lib = pkcs11.lib(module)
    with lib.get_token(token_label=token_label).open(user_pin=pin) as s:
        keys = []
        for obj in s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
            keys.append({
                "label": obj[Attribute.LABEL],
                "sensitive": bool(obj[Attribute.SENSITIVE]),
                "extractable": bool(obj[Attribute.EXTRACTABLE]),
                "always_sensitive": bool(obj[Attribute.ALWAYS_SENSITIVE]),
                "never_extractable": bool(obj[Attribute.NEVER_EXTRACTABLE]),
            })
    print(json.dumps(keys))
    """
)


def private_keys(token: SoftToken) -> list[dict[str, object]]:
    """The token's private key objects and their protection attributes (another process)."""
    done = subprocess.run(
        [sys.executable, "-c", _INSPECT, str(token.module), token.label, token.pin],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **token.env},
    )
    assert done.returncode == 0, done.stderr
    keys: list[dict[str, object]] = json.loads(done.stdout)
    return keys


def _verify(cert: x509.Certificate, key: object) -> None:
    assert cert.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )  # fmt: skip
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        scheme = ec.ECDSA(cert.signature_hash_algorithm)
        key.verify(cert.signature, cert.tbs_certificate_bytes, scheme)


def _issue(material: CAMaterial, cn: str = "device.example.test") -> x509.Certificate:
    csr = make_csr(cn=cn)
    now = datetime.now(UTC)
    plan = IssuancePlan(
        request_id=f"r-{cn}",
        template="device",
        template_oid="2.25.1",
        template_major=1,
        template_minor=0,
        connector="local",
        subject=csr.subject,
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=now,
        not_after=now + timedelta(days=30),
        extensions=(),
        csr=csr,
    )
    result = Issuer(material.signer, material.chain).issue(plan, now)
    assert isinstance(result, tuple), result
    return result[0]


# -- first start ---------------------------------------------------------------------------


def test_init_generates_the_ca_keys_in_the_token_and_writes_no_key_file(
    tmp_path: Path, token: SoftToken
) -> None:
    cfg = _config(tmp_path, token)
    done = certgate("init", "-c", str(cfg))
    assert done.returncode == 0, done.stderr
    ca = tmp_path / "data" / "ca"
    assert sorted(p.name for p in ca.iterdir()) == ["chain.pem", "issuing.pem", "root.pem"]
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    keys = {k["label"]: k for k in private_keys(token)}
    assert set(keys) == {LABEL, f"{LABEL}-root"}
    for key in keys.values():
        assert key["sensitive"] is True and key["extractable"] is False, key
        assert key["always_sensitive"] is True and key["never_extractable"] is True, key
    chain = x509.load_pem_x509_certificates((ca / "chain.pem").read_bytes())
    verified = openssl("verify", "-CAfile", str(ca / "root.pem"), str(ca / "issuing.pem"))
    assert verified.returncode == 0, verified.stderr
    assert chain[0].signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256


@pytest.mark.parametrize(
    ("algorithm", "oid"),
    [
        ("ec-p256", x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256),
        ("ec-p384", x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384),
        ("rsa-3072", x509.SignatureAlgorithmOID.RSA_WITH_SHA256),
    ],
)
def test_certificates_and_crls_signed_in_the_token_verify(
    tmp_path: Path, token: SoftToken, algorithm: str, oid: x509.ObjectIdentifier
) -> None:
    material = open_ca(_settings(tmp_path, token, algorithm), tmp_path / "data")
    try:
        issuing, root = material.chain
        leaf = _issue(material)
        assert leaf.signature_algorithm_oid == oid
        _verify(leaf, issuing.public_key())
        leaf.verify_directly_issued_by(issuing)
        issuing.verify_directly_issued_by(root)
        crl = x509.load_der_x509_crl(
            Issuer(material.signer, material.chain).crl([], datetime.now(UTC))
        )
        assert crl.is_signature_valid(issuing.public_key())
        # openssl: the leaf against root + issuing, the CRL against the issuing CA
        files = {}
        for name, obj in (("leaf", leaf), ("issuing", issuing), ("root", root)):
            files[name] = tmp_path / f"{name}.pem"
            files[name].write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        crl_file = tmp_path / "ca.crl"
        crl_file.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        ok = openssl(
            "verify", "-CAfile", str(files["root"]), "-untrusted", str(files["issuing"]),
            str(files["leaf"]),
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        ok = openssl("crl", "-in", str(crl_file), "-CAfile", str(files["issuing"]), "-noout")
        assert ok.returncode == 0 and b"verify OK" in ok.stderr + ok.stdout, ok.stderr
    finally:
        material.signer.close()


# -- later starts --------------------------------------------------------------------------


def test_a_second_start_uses_the_key_by_label(tmp_path: Path, token: SoftToken) -> None:
    settings = _settings(tmp_path, token)
    first = open_ca(settings, tmp_path / "data")
    first.signer.close()
    second = open_ca(settings, tmp_path / "data")
    try:
        assert not second.created and second.chain == first.chain
        _issue(second).verify_directly_issued_by(first.chain[0])
    finally:
        second.signer.close()
    assert sorted(k["label"] for k in private_keys(token)) == [LABEL, f"{LABEL}-root"]


def test_a_key_already_in_the_token_is_used_on_first_start(
    tmp_path: Path, token: SoftToken
) -> None:
    lib = pkcs11.lib(str(token.module))
    try:
        with lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin) as s:
            params = s.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: pkcs11.util.ec.encode_named_curve_parameters(
                    "secp256r1"
                )},
                local=True,
            )  # fmt: skip
            public, _ = params.generate_keypair(store=True, label=LABEL)
            spki = pkcs11.util.ec.encode_ec_public_key(public)
    finally:
        lib.finalize()
    material = open_ca(_settings(tmp_path, token), tmp_path / "data")
    try:
        assert (
            material.certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == spki
        )
    finally:
        material.signer.close()


def test_signing_survives_a_lost_session_and_concurrent_threads(
    tmp_path: Path, token: SoftToken
) -> None:
    material = open_ca(_settings(tmp_path, token), tmp_path / "data")
    try:
        issuing = material.certificate
        _issue(material, "before.example.test").verify_directly_issued_by(issuing)
        # C_Finalize + C_Initialize: every session and login of this process is gone.
        pkcs11.lib(str(token.module)).reinitialize()
        _issue(material, "after.example.test").verify_directly_issued_by(issuing)
        signed: list[x509.Certificate] = []
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    signed.append(_issue(material, f"t{n}-{i}.example.test"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(signed) == 120
        for cert in signed:
            cert.verify_directly_issued_by(issuing)
    finally:
        material.signer.close()


def test_the_token_may_be_chosen_by_slot_id(tmp_path: Path, token: SoftToken) -> None:
    text = token.connector_keys().replace(
        f'pkcs11_token_label = "{token.label}"', f"pkcs11_slot = {token.slot}"
    )
    settings = parse_settings("local", tomllib.loads(text), str(tmp_path / "certgate.toml"))
    material = open_ca(settings, tmp_path / "data")
    try:
        _issue(material).verify_directly_issued_by(material.certificate)
    finally:
        material.signer.close()


# -- start-up errors: one line naming the key ---------------------------------------------


def _init_error(cfg: Path, env: dict[str, str] | None = None) -> str:
    done = certgate("init", "-c", str(cfg), env=env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_wrong_pin_is_one_line_naming_pkcs11_pin(tmp_path: Path, token: SoftToken) -> None:
    line = _init_error(_config(tmp_path, token), env={PIN_ENV: "not-the-pin"})
    assert "connectors.local.pkcs11_pin" in line and "wrong PIN" in line, line
    assert "not-the-pin" not in line and token.pin not in line


def test_a_missing_token_is_one_line_naming_the_token_label(
    tmp_path: Path, token: SoftToken
) -> None:
    cfg = _config(tmp_path, token)
    cfg.write_text(cfg.read_text().replace(f'"{token.label}"', '"no-such-token"'))
    line = _init_error(cfg)
    assert "connectors.local.pkcs11_token_label" in line and "no-such-token" in line, line


def test_a_bad_module_path_is_one_line_naming_pkcs11_module(
    tmp_path: Path, token: SoftToken
) -> None:
    cfg = _config(tmp_path, token)
    cfg.write_text(cfg.read_text().replace(str(token.module), str(tmp_path / "nope.so")))
    line = _init_error(cfg)
    assert "connectors.local.pkcs11_module" in line and "nope.so" in line, line
    not_a_module = tmp_path / "not-a-module.so"
    not_a_module.write_bytes(b"\x7fELF garbage")
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "nope.so"), str(not_a_module)))
    line = _init_error(cfg)
    assert "connectors.local.pkcs11_module" in line and "cannot load" in line, line


def test_a_key_label_not_in_the_token_is_one_line_naming_pkcs11_key_label(
    tmp_path: Path, token: SoftToken
) -> None:
    cfg = _config(tmp_path, token)
    assert certgate("init", "-c", str(cfg)).returncode == 0
    text = cfg.read_text().replace(f'pkcs11_key_label = "{LABEL}"', 'pkcs11_key_label = "gone"')
    cfg.write_text(text)
    line = _init_error(cfg)
    assert "connectors.local.pkcs11_key_label" in line and "'gone'" in line, line


def test_a_literal_pin_is_refused(tmp_path: Path, token: SoftToken) -> None:
    cfg = _config(tmp_path, token)
    cfg.write_text(cfg.read_text().replace(f'"env:{PIN_ENV}"', f'"{token.pin}"'))
    line = _init_error(cfg)
    assert "connectors.local.pkcs11_pin" in line and token.pin not in line, line


def test_pkcs11_settings_are_validated(tmp_path: Path, token: SoftToken) -> None:
    base = token.connector_keys()
    file = str(tmp_path / "certgate.toml")
    cases = {
        "pkcs11_slot = 0\n": "pkcs11_token_label",  # both a label and a slot
        'passphrase = "env:X"\n': "passphrase",
        'import_certificate = "x.pem"\nimport_key = "x.key"\n': "key_store",
    }
    for extra, key in cases.items():
        with pytest.raises(Exception) as caught:
            parse_settings("local", tomllib.loads(base + extra), file)
        assert f"connectors.local.{key}" in str(caught.value), (extra, caught.value)
    with pytest.raises(Exception) as caught:
        parse_settings("local", tomllib.loads('pkcs11_key_label = "x"\n'), file)
    assert "only meaningful with key_store" in str(caught.value)
    settings = parse_settings("local", tomllib.loads(base), file)
    assert token.pin not in repr(settings)


def test_a_token_gone_at_run_time_makes_the_ca_unavailable_until_it_is_back(
    tmp_path: Path, token: SoftToken
) -> None:
    material = open_ca(_settings(tmp_path, token), tmp_path / "data")
    tokens = token.conf.parent / "tokens"
    kept = tmp_path / "tokens-kept"
    lib = pkcs11.lib(str(token.module))
    try:
        shutil.copytree(tokens, kept)
        shutil.rmtree(tokens)
        tokens.mkdir()
        lib.reinitialize()  # the module now lists no token
        with pytest.raises(CAUnavailable) as caught:
            _issue(material, "gone.example.test")
        assert "token 'certgate-test'" in caught.value.detail
        shutil.rmtree(tokens)
        shutil.copytree(kept, tokens)
        lib.reinitialize()  # the token is back
        _issue(material, "back.example.test").verify_directly_issued_by(material.certificate)
    finally:
        material.signer.close()


def test_other_ca_keys_are_generated_once_under_the_issuing_label(
    tmp_path: Path, token: SoftToken
) -> None:
    """The OCSP responder's key (label ``ocsp``) is one more key pair of the token."""
    settings = _settings(tmp_path, token)
    assert settings.pkcs11 is not None
    store = Pkcs11KeyStore(settings.pkcs11)
    first = store.generate("ocsp", KeyAlgorithm.EC_P256)
    again = store.load("ocsp")
    try:
        assert again.public_key() == first.public_key()
        assert store.location("ocsp").endswith(f"object={LABEL}-ocsp;type=private")
    finally:
        first.close()
        again.close()
    (key,) = private_keys(token)
    assert key["label"] == f"{LABEL}-ocsp" and key["extractable"] is False
