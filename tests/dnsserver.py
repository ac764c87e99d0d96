"""A DNS server inside the test process: it serves zones written in the test, on loopback only.

It answers as a recursive resolver would, so dnspython can be pointed straight at it:
CNAMEs are followed within the zone, a name with no record of the asked type gets an
empty answer, and an unknown name gets NXDOMAIN. Names under a `silent` suffix never get
an answer (a dead blocklist or a resolver that drops queries; "SUFFIX TYPE" silences one
type only), and names under a `servfail` suffix get SERVFAIL (a broken zone behind a
working resolver).

    with ZoneServer('example.edu. MX 10 mx.example.edu.\\nmx.example.edu. A 192.0.2.25') as dns:
        await resolve_target("example.edu", domain=True, resolver=dns.address)

dnslib never truncates its UDP answers here, so dnspython never falls back to TCP and the
server listens on UDP only.
"""

from __future__ import annotations

import socket

from dnslib import CNAME, QTYPE, RCODE, RR, DNSError, DNSLabel
from dnslib.server import DNSLogger, DNSServer


class ZoneResolver:
    """dnslib's resolver interface over records in zone-file syntax."""

    def __init__(self, zone: str, silent: tuple[str, ...] = (), servfail: tuple[str, ...] = ()):
        self.records = RR.fromZone(zone, ttl=60)
        self.silent = [_suffix_and_type(entry) for entry in silent]
        self.servfail = [DNSLabel(suffix) for suffix in servfail]

    def resolve(self, request, handler):
        qname, qtype = request.q.qname, request.q.qtype
        if any(qname.matchSuffix(suffix) and rtype in (None, qtype) for suffix, rtype in self.silent):
            raise DNSError(f"{qname} is a silent name: no answer")  # dnslib drops the query
        reply = request.reply()
        if any(qname.matchSuffix(suffix) for suffix in self.servfail):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        answers = self._answers(qname, qtype)
        if answers is None:
            reply.header.rcode = RCODE.NXDOMAIN
        for record in answers or []:
            reply.add_answer(record)
        return reply

    def _answers(self, qname: DNSLabel, qtype: int, depth: int = 0) -> list[RR] | None:
        """The records for the question, following CNAMEs; None when the name does not exist."""
        at_name = [r for r in self.records if r.rname == qname]
        if not at_name:
            return None
        exact = [r for r in at_name if r.rtype == qtype]
        aliases = [r for r in at_name if r.rtype == QTYPE.CNAME]
        if exact or not aliases or depth > 8:
            return exact
        alias: CNAME = aliases[0].rdata
        return aliases[:1] + (self._answers(alias.label, qtype, depth + 1) or [])


def _suffix_and_type(entry: str) -> tuple[DNSLabel, int | None]:
    suffix, _, rtype = entry.partition(" ")
    return DNSLabel(suffix), getattr(QTYPE, rtype) if rtype else None


class ZoneServer:
    """The resolver above on 127.0.0.1 and a port the OS chooses; a context manager."""

    def __init__(self, zone: str = "", *, silent: tuple[str, ...] = (), servfail: tuple[str, ...] = ()):
        resolver = ZoneResolver(zone, silent, servfail)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
        self.server = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)

    @property
    def address(self) -> str:
        host, port = self.server.server.server_address
        return f"{host}:{port}"

    def __enter__(self) -> ZoneServer:
        self.server.start_thread()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.stop()
        self.server.server.server_close()


class SilentResolver:
    """A UDP port that takes queries and never answers: a resolver that is down or filtered."""

    def __enter__(self) -> SilentResolver:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        host, port = self.socket.getsockname()
        self.address = f"{host}:{port}"
        return self

    def __exit__(self, *exc_info) -> None:
        self.socket.close()
