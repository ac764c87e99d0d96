"""Discovery's sweep against listeners on several loopback addresses: what it finds, and its manners."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict

import dns.reversename
import pytest

from relaytests.probe.discovery import Listener, mail_hosts, network_hosts, sweep
from tests.dnsserver import ZoneServer
from tests.parallel import loopback

# In this test process's own loopback block (tests/parallel.py), clear of the Postfix instances'.
ADDRESSES = [loopback(n) for n in range(40, 50)]
A, B = ADDRESSES[:2]
# Seconds a connection may reach its listener late, by the event loop's scheduling: on a machine whose
# cores are all busy (the whole suite in parallel) a process waits tens of milliseconds for its turn,
# and one connection seen 11 ms later than the tenth after it made 11 in a second. Still tight: 11
# connections in a second less this would take starts closer than 95 ms on average, 1/rate being 100.
JITTER = 0.05


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class Listeners:
    """SMTP-ish listeners: each connection's time and address, and how many were open at once per address."""

    def __init__(self):
        self.connected: list[tuple[float, str]] = []
        self.open: dict[str, int] = defaultdict(int)
        self.most_open: dict[str, int] = defaultdict(int)
        self.heard: list[bytes] = []
        self.servers: list[asyncio.Server] = []

    async def start(self, address: str, port: int, greeting: bytes) -> None:
        async def greet(reader, writer):
            self.connected.append((asyncio.get_running_loop().time(), address))
            self.open[address] += 1
            self.most_open[address] = max(self.most_open[address], self.open[address])
            try:
                writer.write(greeting)
                await writer.drain()
                self.heard.append(await reader.readline())
            finally:
                self.open[address] -= 1
                writer.close()

        self.servers.append(await asyncio.start_server(greet, address, port))

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture
async def listeners():
    made = Listeners()
    yield made
    made.close()


async def test_the_sweep_finds_each_listener_with_its_greeting_and_reads_nothing_more(listeners):
    smtp, submission = free_port(A), free_port(A)
    await listeners.start(A, smtp, b"220 mx.dept.example.edu ESMTP Postfix\r\n")
    await listeners.start(B, smtp, b"220-mail.chem.example.edu ESMTP\r\n220 hello\r\n")
    await listeners.start(B, submission, b"220 \x1b[31mevil\r\n")

    found = await sweep(((a, "") for a in ADDRESSES[:4]), [smtp, submission], rate=50, timeout=2)

    assert set(found) == {
        Listener(A, smtp, "220 mx.dept.example.edu ESMTP Postfix"),
        Listener(B, smtp, "220-mail.chem.example.edu ESMTP 220 hello"),
        Listener(B, submission, "220 \ufffd[31mevil"),  # no terminal escape gets through
    }
    assert listeners.heard == [b"QUIT\r\n"] * 3  # the greeting, QUIT, nothing more


async def test_the_sweep_stays_under_its_rate_with_one_connection_per_address(listeners):
    smtp, submission = free_port(A), free_port(A)
    for address in ADDRESSES:
        await listeners.start(address, smtp, b"220 ok\r\n")
        await listeners.start(address, submission, b"220 ok\r\n")
    rate = 10

    found = await sweep(((a, "") for a in ADDRESSES), [smtp, submission], rate=rate, timeout=2)

    assert len(found) == 20
    times = sorted(t for t, _ in listeners.connected)
    # Connections in the busiest second and over the whole sweep, read at the listeners, less the jitter.
    busiest = max(sum(1 for t in times if start <= t < start + 1.0 - JITTER) for start in times)
    measured = (len(times) - 1) / (times[-1] - times[0] + JITTER)
    print(
        f"discovery: {len(times)} connections, {measured:.2f} a second (limit {rate}), busiest second {busiest}"
    )
    assert measured <= rate and busiest <= rate
    assert max(listeners.most_open.values()) == 1


async def test_mx_hosts_are_found_in_dns_and_listed_even_when_silent(listeners):
    port = free_port(A)
    await listeners.start(A, port, b"220 mx1.dept.example.edu ESMTP\r\n")
    zone = "\n".join(
        [
            "dept.example.edu. MX 10 mx1.dept.example.edu.",
            "dept.example.edu. MX 20 mx2.dept.example.edu.",
            f"mx1.dept.example.edu. A {A}",
            f"mx2.dept.example.edu. A {B}",
            f"{dns.reversename.from_address(A)} PTR mx1.dept.example.edu.",
        ]
    )
    with ZoneServer(zone) as zone_server:
        hosts = await mail_hosts(["dept.example.edu"], zone_server.address, timeout=2)
        found = await sweep(hosts.items(), [port], rate=50, timeout=2, resolver=zone_server.address)

    assert hosts == {A: "mx1.dept.example.edu", B: "mx2.dept.example.edu"}
    assert sorted(found, key=lambda listener: listener.address) == [
        Listener(
            A,
            port,
            "220 mx1.dept.example.edu ESMTP",
            "mx1.dept.example.edu",
            "mx1.dept.example.edu",
        ),
        Listener(B, port, "", "mx2.dept.example.edu"),  # from DNS: nothing answered
    ]


def test_a_networks_hosts_are_read_lazily():
    hosts = network_hosts(["10.0.0.0/8", "127.0.0.4/31"])
    assert [next(hosts), next(hosts)] == ["10.0.0.1", "10.0.0.2"]
    assert list(network_hosts(["127.0.0.4/31", "127.0.0.9/32"])) == ["127.0.0.4", "127.0.0.5", "127.0.0.9"]
