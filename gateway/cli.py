"""``certgate``: serve, and operate the gateway from its host.

Operator commands build the same components as the server (gateway.server.wiring) and act on
the same store and CA, so ``certgate enroll`` is judged by exactly the template policy a protocol
request meets. Output is a human table by default and JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import getpass
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import Config, default_config_path, load_config
from gateway.errors import CertgateError, ConfigError, NotFound
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    Denied,
    EnrollmentRequest,
    Issued,
    Outcome,
    RequestRecord,
    RequestState,
    RevocationReason,
)
from gateway.pkix import fingerprint, load_csr, pem_chain
from gateway.policy import format_duration
from gateway.server.wiring import Components, build
from gateway.service import local_requester

#: Entry-point group through which front-ends add operator commands: each entry is a callable
#: ``register(subparsers, common_parent_parser)`` that adds sub-commands whose ``func`` is an
#: ``async (Components, argparse.Namespace) -> int``.
CLI_GROUP = "certgate.cli"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PENDING, EXIT_DENIED = 0, 1, 2, 3, 4


# -- output helpers ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, str | int):
        return value.value
    return value


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    text = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        print(json.dumps(_jsonable(data), indent=2, sort_keys=True))
    else:
        print(human)


def _request_dict(r: RequestRecord) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies read-only mappings inside Requester.
    d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "csr_der"}
    d["requester"] = r.requester.to_json()
    return d


def _cert_dict(c: CertificateRecord, *, pem: bool = False) -> dict[str, Any]:
    d = {f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.name != "der"}
    d["revocation_reason"] = c.revocation_reason.name.lower() if c.revocation_reason else None
    if pem:
        d["pem"] = c.certificate.public_bytes(serialization.Encoding.PEM).decode()
    return d


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


# -- commands ---------------------------------------------------------------------------------


async def cmd_templates_list(c: Components, args: argparse.Namespace) -> int:
    templates = sorted(c.policy.templates.values(), key=lambda t: t.name)
    rows = [
        (
            t.name,
            f"{t.major_version}.{t.minor_version}",
            t.validity,
            t.renewal_period,
            "yes" if t.issuance.manager_approval else "no",
            t.connector,
        )
        for t in templates
    ]
    data = [
        {
            "name": t.name,
            "oid": t.oid,
            "major_version": t.major_version,
            "minor_version": t.minor_version,
            "validity_seconds": t.validity.total_seconds(),
            "renewal_period_seconds": t.renewal_period.total_seconds(),
            "manager_approval": t.issuance.manager_approval,
            "connector": t.connector,
        }
        for t in templates
    ]
    _emit(
        args,
        data,
        _table(rows, ["NAME", "VERSION", "VALIDITY", "RENEWAL", "APPROVAL", "CONNECTOR"]),
    )
    return EXIT_OK


def _plain(value: Any) -> Any:
    """Templates as JSON-able data (not dataclasses.asdict: it deep-copies read-only maps)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, x509.ObjectIdentifier):
        return value.dotted_string
    if isinstance(value, enum.Enum):
        return value.value
    return value


async def cmd_templates_show(c: Components, args: argparse.Namespace) -> int:
    t = c.policy.template(args.name)
    data = _plain(t)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        for key, value in sorted(data.items()):
            print(f"{key:18} {value}")
    return EXIT_OK


async def cmd_templates_import(c: Components, args: argparse.Namespace) -> int:
    """Fetch GetPolicies from an AD CS CEP and write one template file per policy."""
    from backends.ms_ces import MSCESConnector  # the CLI is the composition root
    from backends.ms_ces.importer import import_policies
    from gateway.policy import load_template

    connector = c.connectors.get(args.connector)
    if not isinstance(connector, MSCESConnector):
        raise CertgateError(f"connector {args.connector!r} is not an ms_ces connector")
    document = await connector.fetch_policies(args.xcep)
    imported = import_policies(document, connector=args.connector, source=args.xcep)
    out: Path = args.out or c.config.templates_dir
    out.mkdir(parents=True, exist_ok=True)
    clashes = [t.name for t in imported if (out / f"{t.name}.toml").exists()]
    if clashes and not args.force:
        raise CertgateError(f"{out}: {', '.join(clashes)} exist (use --force to overwrite)")
    for template in imported:
        path = out / f"{template.name}.toml"
        path.write_text(template.toml, encoding="utf-8")
        load_template(path)  # what was written must load (ConfigError names the key)
    rows = [(t.name, t.adcs_name, len(t.unmapped)) for t in imported]
    data = [
        {
            "name": t.name,
            "adcs_template": t.adcs_name,
            "file": str(out / f"{t.name}.toml"),
            "unmapped": list(t.unmapped),
        }
        for t in imported
    ]
    human = _table(rows, ["NAME", "AD CS TEMPLATE", "NOT MAPPED"]) + "".join(
        f"\n{t.name}: {item}" for t in imported for item in t.unmapped
    )
    _emit(args, data, human)
    return EXIT_OK


def _print_outcome(args: argparse.Namespace, outcome: Outcome, request_id: str | None) -> int:
    if isinstance(outcome, Issued):
        pem = pem_chain(outcome.full_chain).decode()
        if args.out:
            Path(args.out).write_text(pem)
        _emit(
            args,
            {
                "status": "issued",
                "request_id": request_id,
                "serial": format(outcome.certificate.serial_number, "x"),
                "chain": pem,
            },
            pem.rstrip() if not args.out else f"issued, chain written to {args.out}",
        )
        return EXIT_OK
    if isinstance(outcome, Denied):
        _emit(
            args,
            {
                "status": "denied",
                "request_id": request_id,
                "code": outcome.code,
                "rule": outcome.rule,
                "detail": outcome.detail,
            },
            f"denied by rule {outcome.rule}: {outcome.detail}",
        )
        return EXIT_DENIED
    _emit(
        args,
        {
            "status": "pending",
            "request_id": outcome.request_id,
            "reason": outcome.reason.value,
            "retry_after": outcome.retry_after,
        },
        f"pending ({outcome.reason.value}): request id {outcome.request_id}",
    )
    return EXIT_PENDING


async def cmd_enroll(c: Components, args: argparse.Namespace) -> int:
    try:
        data = Path(args.csr).read_bytes()
    except OSError as exc:
        raise CertgateError(f"cannot read {args.csr}: {exc.strerror}") from None
    request = EnrollmentRequest(
        csr=load_csr(data),
        template=args.template,
        requester=local_requester(args.principal),
        transaction_id=args.transaction_id or str(uuid.uuid4()),
    )
    outcome = await c.service.enroll(request)
    stored = await c.store.find_request("cli", request.transaction_id)
    return _print_outcome(args, outcome, stored.id if stored else None)


async def cmd_requests_list(c: Components, args: argparse.Namespace) -> int:
    state = RequestState(args.state) if args.state else None
    records = await c.store.list_requests(state, limit=args.limit)
    rows = [
        (
            r.id,
            r.state.value,
            r.pending_reason.value if r.pending_reason else "",
            r.template,
            r.requester.principal,
            r.protocol,
            _ts(r.created_at),
        )
        for r in records
    ]
    _emit(
        args,
        [_request_dict(r) for r in records],
        _table(rows, ["ID", "STATE", "WAITING", "TEMPLATE", "REQUESTER", "PROTOCOL", "CREATED"]),
    )
    return EXIT_OK


async def _get_request(c: Components, request_id: str) -> RequestRecord:
    record = await c.store.get_request(request_id)
    if record is None:
        raise NotFound(f"no request {request_id}")
    return record


async def cmd_requests_show(c: Components, args: argparse.Namespace) -> int:
    record = await _get_request(c, args.id)
    data = _request_dict(record)
    lines = [f"{k:18} {_jsonable(v)}" for k, v in sorted(data.items()) if v is not None]
    if record.state is RequestState.ISSUED and record.certificate_serial:
        outcome = await c.service.outcome_of(record)
        if isinstance(outcome, Issued):
            data["chain"] = pem_chain(outcome.full_chain).decode()
            lines.append(data["chain"].rstrip())
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


async def cmd_requests_approve(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.approve(args.id, _actor())
    return _print_outcome(args, outcome, args.id)


async def cmd_requests_deny(c: Components, args: argparse.Namespace) -> int:
    outcome = await c.service.deny(args.id, _actor(), args.reason or "")
    _print_outcome(args, outcome, args.id)
    return EXIT_OK


async def cmd_certs_list(c: Components, args: argparse.Namespace) -> int:
    status = CertificateStatus(args.status) if args.status else None
    records = await c.store.list_certificates(status, limit=args.limit)
    rows = [
        (
            r.serial,
            r.status.value,
            r.template,
            r.subject or "-",
            ",".join(r.sans)[:60],
            _ts(r.not_after),
            r.superseded_by or "",
        )
        for r in records
    ]
    _emit(
        args,
        [_cert_dict(r) for r in records],
        _table(
            rows, ["SERIAL", "STATUS", "TEMPLATE", "SUBJECT", "SANS", "EXPIRES", "SUPERSEDED-BY"]
        ),
    )
    return EXIT_OK


async def _get_cert(c: Components, serial: str) -> CertificateRecord:
    record = await c.store.get_certificate(serial.lower().replace(":", "").lstrip("0") or "0")
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    return record


async def cmd_certs_show(c: Components, args: argparse.Namespace) -> int:
    record = await _get_cert(c, args.serial)
    data = _cert_dict(record, pem=True)
    lines = [
        f"{k:18} {_jsonable(v)}" for k, v in sorted(data.items()) if v is not None and k != "pem"
    ]
    _emit(args, data, "\n".join(lines) + "\n" + data["pem"].rstrip())
    return EXIT_OK


async def cmd_certs_revoke(c: Components, args: argparse.Namespace) -> int:
    reason = RevocationReason[args.reason.upper().replace("-", "_")]
    record = await c.service.revoke(args.serial.lower().replace(":", ""), reason, _actor())
    _emit(args, _cert_dict(record), f"revoked {record.serial} ({reason.name.lower()})")
    return EXIT_OK


async def cmd_certs_due(c: Components, args: argparse.Namespace) -> int:
    due = await c.service.due_certificates()
    rows = [
        (
            d.record.serial,
            d.record.template,
            d.record.subject or ",".join(d.record.sans),
            _ts(d.window_start),
            _ts(d.record.not_after),
            d.reason,
        )
        for d in due
    ]
    data = [
        {
            **_cert_dict(d.record),
            "window_start": d.window_start,
            "window_end": d.window_end,
            "reason": d.reason,
        }
        for d in due
    ]
    _emit(
        args, data, _table(rows, ["SERIAL", "TEMPLATE", "NAME", "DUE-SINCE", "EXPIRES", "REASON"])
    )
    return EXIT_OK


async def cmd_ca_show(c: Components, args: argparse.Namespace) -> int:
    chain = await c.service.ca_chain()
    data = [
        {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc,
            "not_after": cert.not_valid_after_utc,
            "sha256": fingerprint(cert),
        }
        for cert in chain
    ]
    human = "\n\n".join("\n".join(f"{k:11} {_jsonable(v)}" for k, v in d.items()) for d in data)
    _emit(args, data, human)
    return EXIT_OK


async def cmd_ca_crl(c: Components, args: argparse.Namespace) -> int:
    der = await c.service.crl()
    if args.out:
        Path(args.out).write_bytes(der)
    else:
        sys.stdout.buffer.write(der if args.der else _pem("X509 CRL", der))
    return EXIT_OK


async def cmd_ca_export(c: Components, args: argparse.Namespace) -> int:
    pem = pem_chain(await c.service.ca_chain())
    if args.out:
        Path(args.out).write_bytes(pem)
    else:
        sys.stdout.buffer.write(pem)
    return EXIT_OK


def _pem(label: str, der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


# -- argument parsing -------------------------------------------------------------------------

Command = Callable[[Components, argparse.Namespace], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the sub-command must survive the sub-parser's defaults.
    common.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="configuration file (default: $CERTGATE_CONFIG, else ./conf/certgate.toml)",
    )
    common.add_argument(
        "--data",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory (default: $CERTGATE_DATA, else [data] dir, else ./.certgate)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )

    parser = argparse.ArgumentParser(
        prog="certgate", parents=[common], description="certificate enrollment gateway"
    )
    parser.set_defaults(config=None, data=None, json=False)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing one port")

    def group(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        p = sub.add_parser(name, parents=[common], help=help_)
        return p.add_subparsers(dest="action", required=True)

    tpl = group("templates", "certificate templates")
    tpl.add_parser("list", parents=[common]).set_defaults(func=cmd_templates_list)
    show = tpl.add_parser("show", parents=[common])
    show.add_argument("name")
    show.set_defaults(func=cmd_templates_show)
    imp = tpl.add_parser("import", parents=[common], help="import AD CS templates over MS-XCEP")
    imp.add_argument("--xcep", required=True, metavar="URL", help="CEP GetPolicies endpoint")
    imp.add_argument(
        "--connector", required=True, help="ms_ces connector: its credentials, and the route"
    )
    imp.add_argument("--out", type=Path, help="directory (default: [policy] templates_dir)")
    imp.add_argument("--force", action="store_true", help="overwrite existing files")
    imp.set_defaults(func=cmd_templates_import)

    enroll = sub.add_parser("enroll", parents=[common], help="submit a CSR locally")
    enroll.add_argument("--template", "-t", required=True)
    enroll.add_argument("--csr", required=True, help="PKCS#10 file (PEM or DER)")
    enroll.add_argument("--principal", default="operator", help="requester principal")
    enroll.add_argument("--transaction-id", help="idempotency key (default: random)")
    enroll.add_argument("--out", "-o", help="write the PEM chain here")
    enroll.set_defaults(func=cmd_enroll)

    req = group("requests", "enrollment requests")
    lst = req.add_parser("list", parents=[common])
    lst.add_argument("--state", choices=[s.value for s in RequestState])
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(func=cmd_requests_list)
    for name, func in (("show", cmd_requests_show), ("approve", cmd_requests_approve)):
        p = req.add_parser(name, parents=[common])
        p.add_argument("id")
        p.add_argument("--out", "-o", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
    deny = req.add_parser("deny", parents=[common])
    deny.add_argument("id")
    deny.add_argument("--reason", default="")
    deny.add_argument("--out", help=argparse.SUPPRESS)
    deny.set_defaults(func=cmd_requests_deny)

    certs = group("certs", "certificate inventory")
    cl = certs.add_parser("list", parents=[common])
    cl.add_argument("--status", choices=[s.value for s in CertificateStatus])
    cl.add_argument("--limit", type=int, default=1000)
    cl.set_defaults(func=cmd_certs_list)
    cs = certs.add_parser("show", parents=[common])
    cs.add_argument("serial")
    cs.set_defaults(func=cmd_certs_show)
    cr = certs.add_parser("revoke", parents=[common])
    cr.add_argument("serial")
    cr.add_argument(
        "--reason",
        default="unspecified",
        choices=[r.name.lower().replace("_", "-") for r in RevocationReason],
    )
    cr.set_defaults(func=cmd_certs_revoke)
    certs.add_parser("due", parents=[common]).set_defaults(func=cmd_certs_due)

    ca = group("ca", "the CA")
    ca.add_parser("show", parents=[common]).set_defaults(func=cmd_ca_show)
    crl = ca.add_parser("crl", parents=[common])
    crl.add_argument("--out", "-o")
    crl.add_argument("--der", action="store_true")
    crl.set_defaults(func=cmd_ca_crl)
    exp = ca.add_parser("export", parents=[common])
    exp.add_argument("--out", "-o")
    exp.set_defaults(func=cmd_ca_export)
    for ep in entry_points(group=CLI_GROUP):
        try:
            register = ep.load()
        except ModuleNotFoundError as exc:  # a front-end declared but not installed/built
            logging.getLogger("certgate").debug("cli plug-in %s unavailable: %s", ep.name, exc)
            continue
        register(sub, common)
    return parser


async def _run_command(config: Config, func: Command, args: argparse.Namespace) -> int:
    components = await build(config)
    try:
        return await func(components, args)
    finally:
        await components.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command != "serve" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config or default_config_path(), data_dir=args.data)
        if args.command == "serve":
            from gateway.server.run import serve

            if args.host or args.port is not None:
                server = config.server.listening_on(
                    args.host or config.server.host,
                    config.server.port if args.port is None else args.port,
                )
                config = dataclasses.replace(config, server=server)
            logging.getLogger().setLevel(config.log_level)
            return serve(config, workers=args.workers)
        return asyncio.run(_run_command(config, args.func, args))
    except ConfigError as exc:
        print(f"certgate: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CertgateError as exc:
        print(f"certgate: {exc.code.value}: {exc.detail}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `certgate ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
