"""Discovery: the mail servers in scope that answer SMTP, found without testing them for relaying.

Two sources: the MX hosts of mail domains (DNS), and optionally a sweep of addresses (every address of
the scope networks). Either way each address and port gets one connection: read the greeting, say QUIT,
hang up, nothing more; at most `rate` connections a second in all, and one connection per address at a
time. Each listener found gets its reverse DNS name. Nothing here raises for a silent or refusing host:
it is simply not a listener (an MX host that answers on no port is still listed, from DNS).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dns.reversename

from relaytests.probe.dnschecks.client import DnsClient, plain_name
from relaytests.probe.dnschecks.mx import find_mail_hosts
from relaytests.probe.sanitise import safe_text

GREETING_KEPT = 200  # characters of a greeting kept: enough to tell the software, no more
MAX_GREETING_LINES = 10
READ_LIMIT = 2048  # bytes one greeting line may take before the connection is given up
IN_FLIGHT = 64  # addresses worked on at once; the rate, not this, bounds the connections


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    greeting: str  # "" when it answered on no port (an MX host known from DNS only)
    name: str = ""  # the MX host name it was found under
    ptr: str = ""


class Pacer:
    """Lets connections start one at a time, at least 1/rate seconds apart as they really start (a
    caller woken late delays the next one, never brings it closer): at most `rate` in any second."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.last_start: float | None = None
        self.turn = asyncio.Lock()

    async def wait(self) -> None:
        async with self.turn:
            loop = asyncio.get_running_loop()
            if self.last_start is not None:
                await asyncio.sleep(max(0.0, self.last_start + self.interval - loop.time()))
            self.last_start = loop.time()


async def greeting_of(address: str, port: int, timeout: float, source_address: str | None) -> str | None:
    """The greeting on address and port (after QUIT, the connection closed), or None when nothing
    listens there. A listener that says nothing in time is one still: its greeting is "(silent)"."""
    local = (source_address, 0) if source_address else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, local_addr=local, limit=READ_LIMIT), timeout
        )
    except (OSError, TimeoutError):
        return None
    lines: list[str] = []
    try:
        await asyncio.wait_for(_read_reply(reader, lines), timeout)
        writer.write(b"QUIT\r\n")
        await asyncio.wait_for(writer.drain(), timeout)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        pass  # what it said so far is its greeting
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout)
    return safe_text(" ".join(lines), GREETING_KEPT) or "(silent)"


async def _read_reply(reader: asyncio.StreamReader, lines: list[str]) -> None:
    """The greeting's lines into `lines`, up to the last one of the reply ("220 ..." after "220-...")."""
    for _ in range(MAX_GREETING_LINES):
        line = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            return
        lines.append(line)
        if line[3:4] != "-":
            return


async def sweep(
    targets: Iterable[tuple[str, str]],
    ports: Iterable[int],
    *,
    rate: float,
    timeout: float = 10.0,
    source_address: str | None = None,
    resolver: str | None = None,
) -> list[Listener]:
    """Every listener among the (address, MX name or "") targets on the ports, with its reverse DNS.

    The targets are read lazily: a whole network's hosts never sit in memory at once.
    """
    pacer, ports, pending = Pacer(rate), list(ports), iter(targets)
    found: list[Listener] = []

    async def work() -> None:
        for address, name in pending:
            found.extend(await _probe_address(address, name, ports, pacer, timeout, source_address))

    await asyncio.gather(*(work() for _ in range(IN_FLIGHT)))
    client = DnsClient(resolver, timeout)
    names = await asyncio.gather(*(reverse_name(listener.address, client) for listener in found))
    return [_with_ptr(listener, ptr) for listener, ptr in zip(found, names, strict=True)]


async def _probe_address(
    address: str, name: str, ports: list[int], pacer: Pacer, timeout: float, source_address: str | None
) -> list[Listener]:
    """The address's listeners, one port after another; an MX host with none is listed from DNS."""
    listeners = []
    for port in ports:
        await pacer.wait()
        greeting = await greeting_of(address, port, timeout, source_address)
        if greeting is not None:
            listeners.append(Listener(address, port, greeting, name))
    if name and not listeners and ports:
        listeners.append(Listener(address, ports[0], "", name))
    return listeners


def _with_ptr(listener: Listener, ptr: str) -> Listener:
    return Listener(listener.address, listener.port, listener.greeting, listener.name, ptr)


async def reverse_name(address: str, client: DnsClient) -> str:
    """The address's first PTR name, or "" when it has none (or DNS could not say)."""
    answer = await client.lookup(dns.reversename.from_address(address).to_text(), "PTR")
    names = [safe_text(plain_name(record.target.to_text()), 255) for record in answer.records]
    return names[0] if names else ""


async def mail_hosts(domains: Iterable[str], resolver: str | None, timeout: float = 10.0) -> dict[str, str]:
    """{address: MX host name} of every host that receives mail for the domains (the domain's own
    address where it has no MX)."""
    client = DnsClient(resolver, timeout)
    found = await asyncio.gather(*(find_mail_hosts(domain, client) for domain in domains))
    return {address: name for mail in found for name, address in mail.receiving_hosts()}


def network_hosts(networks: Iterable[str]) -> Iterator[str]:
    """Every host address of the networks, lazily."""
    for network in networks:
        for address in ipaddress.ip_network(network, strict=False).hosts():
            yield str(address)
