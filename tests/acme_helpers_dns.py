"""A small authoritative-looking DNS server on loopback UDP for ACME tests, built on dnspython.

pebble-challtestsrv serves TXT and CAA records but cannot set a CAA record's critical flag nor
stay silent; this server can do both: records are zone-file rdata text per (name, type), and
names in ``silent`` never get an answer (the client times out). Every A query gets 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class DNSZone:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    silent: set[tuple[str, str]] = field(default_factory=set)
    port: int = 0

    def add(self, name: str, rdtype: str, *rdata: str) -> None:
        self.records.setdefault((name.rstrip(".").lower(), rdtype), []).extend(rdata)

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if (name, rdtype) in self.silent:
            return None
        response = dns.message.make_response(query)
        rdata = self.records.get((name, rdtype))
        if rdtype == "A" and rdata is None:
            rdata = ["127.0.0.1"]
        if rdata:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rdtype, rdata)
            )
        return response.to_wire()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, zone: DNSZone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = self.zone.answer(data)
        except Exception:  # a malformed query: answer nothing
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@asynccontextmanager
async def dns_server() -> AsyncIterator[DNSZone]:
    """A :class:`DNSZone` served on 127.0.0.1 (``zone.port``) in the running event loop."""
    zone = DNSZone()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(zone), local_addr=("127.0.0.1", 0)
    )
    zone.port = transport.get_extra_info("sockname")[1]
    try:
        yield zone
    finally:
        transport.close()
