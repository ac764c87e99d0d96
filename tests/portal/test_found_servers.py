"""Discovery in the portal: fake SMTP listeners on several loopback addresses and the test DNS server
as the scope; found, assigned (registered and tested), marked known, and the coverage."""

from __future__ import annotations

import asyncio
import socket
import threading

import dns.reversename
import pytest
from celery import Celery
from django.urls import reverse

from portal import celery as portal_celery
from relaytests import tasks, unregistered
from relaytests.models import AuditEntry, FoundServer, MailServer, TestRun
from tests.dnsserver import ZoneServer
from tests.parallel import loopback
from tests.portal.conftest import client_for
from tests.portal.worker import loopback_server

pytestmark = pytest.mark.django_db

# In this test process's own loopback block (tests/parallel.py), clear of the Postfix instances'.
MX1, MX2, PRINTER, REGISTERED = (loopback(n) for n in range(30, 34))
ZONE = "\n".join(
    [
        "dept.example.edu. MX 10 mx1.dept.example.edu.",
        "dept.example.edu. MX 20 mx2.dept.example.edu.",
        f"mx1.dept.example.edu. A {MX1}",
        f"mx2.dept.example.edu. A {MX2}",
        f"{dns.reversename.from_address(MX1)} PTR mx1.dept.example.edu.",
        f"{dns.reversename.from_address(PRINTER)} PTR printer.dept.example.edu.",
    ]
)


class Listeners:
    """Greeting-only SMTP listeners in a thread of their own, on the addresses given."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.connections = 0

    def start(self, address: str, port: int, greeting: str) -> None:
        async def greet(reader, writer):
            self.connections += 1
            writer.write(greeting.encode() + b"\r\n")
            await writer.drain()
            await reader.readline()
            writer.close()

        async def serve():
            return await asyncio.start_server(greet, address, port)

        self.servers.append(asyncio.run_coroutine_threadsafe(serve(), self.loop).result(5))

    def stop(self) -> None:
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def port() -> int:
    with socket.socket() as probe:
        probe.bind((MX1, 0))
        return probe.getsockname()[1]


@pytest.fixture
def scope(settings, port):
    """dept.example.edu and four loopback addresses in scope, its DNS on loopback, listeners on three."""
    listeners = Listeners()
    listeners.start(MX1, port, "220 mx1.dept.example.edu ESMTP Postfix")
    listeners.start(PRINTER, port, "220 printer ESMTP")
    listeners.start(REGISTERED, port, "220 mail.physics.example.edu ESMTP Exim")
    with ZoneServer(ZONE) as zone_server:
        settings.RELAYTEST_RESOLVER = zone_server.address
        settings.RELAYTEST_SCOPE_DOMAINS = ["dept.example.edu"]
        settings.RELAYTEST_SCOPE_NETWORKS = [f"{MX1}/31", f"{PRINTER}/31"]
        settings.RELAYTEST_ALLOWED_PORTS = [25, port]
        settings.RELAYTEST_DISCOVERY_PORTS = [port]
        settings.RELAYTEST_DISCOVERY_RATE = 50
        settings.RELAYTEST_DISCOVERY_SWEEP = True
        yield listeners
    listeners.stop()


@pytest.fixture
def published(monkeypatch):
    sent: list[int] = []

    class Result:
        id = "task-id"

    def apply_async(args, **options):
        sent.append(args[0])
        return Result()

    monkeypatch.setattr(tasks.run_suite, "apply_async", apply_async)
    return sent


def found() -> dict[str, tuple]:
    return {f.address: (f.source, f.name, f.ptr, f.greeting) for f in FoundServer.objects.all()}


def test_the_mx_hosts_and_the_swept_listeners_are_found_with_greeting_and_reverse_dns(
    scope, port, department
):
    loopback_server(department, REGISTERED, port=port)  # registered already

    assert tasks.discover_servers.apply().get() == 4

    assert found() == {
        MX1: (
            "mx",
            "mx1.dept.example.edu",
            "mx1.dept.example.edu",
            "220 mx1.dept.example.edu ESMTP Postfix",
        ),
        MX2: ("mx", "mx2.dept.example.edu", "", ""),  # in DNS, nothing answers
        PRINTER: ("sweep", "", "printer.dept.example.edu", "220 printer ESMTP"),
        REGISTERED: ("sweep", "", "", "220 mail.physics.example.edu ESMTP Exim"),
    }
    coverage = unregistered.coverage()
    assert (coverage["registered"], coverage["found"]) == (1, 4)
    assert [f.address for f in coverage["unregistered"]] == [MX1, MX2, PRINTER]


def test_the_sweep_is_off_unless_central_it_turns_it_on(scope, settings):
    settings.RELAYTEST_DISCOVERY_SWEEP = False

    tasks.discover_servers.apply()

    assert set(found()) == {MX1, MX2}  # the MX hosts only
    assert scope.connections == 1  # only mx1 listens


def test_central_it_assigns_a_found_server_in_one_step_and_it_is_tested(
    scope, port, department, staff, published, django_capture_on_commit_callbacks
):
    tasks.discover_servers.apply()
    mx1 = FoundServer.objects.get(address=MX1)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(staff).post(
            reverse("relaytests:found-server-assign", args=[mx1.pk]), {"department": department.pk}
        )

    server = MailServer.objects.get(target="mx1.dept.example.edu")
    assert (server.department, server.port, server.addresses) == (department, port, [MX1])
    run = TestRun.objects.get(server=server)
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert published == [run.pk]
    coverage = unregistered.coverage()
    assert (coverage["registered"], coverage["found"]) == (1, 4)
    logged = AuditEntry.objects.order_by("pk").values_list("user", "action", "object_id")
    assert list(logged) == [(staff.pk, "server_registered", server.pk), (staff.pk, "run_started", run.pk)]


def test_an_assignment_the_scope_refuses_says_why_and_registers_nothing(scope, department, staff, settings):
    tasks.discover_servers.apply()
    settings.RELAYTEST_SCOPE_NETWORKS = [f"{PRINTER}/31"]  # narrowed since
    settings.RELAYTEST_SCOPE_DOMAINS = []
    mx1 = FoundServer.objects.get(address=MX1)

    response = client_for(staff).post(
        reverse("relaytests:found-server-assign", args=[mx1.pk]), {"department": department.pk}, follow=True
    )

    assert not MailServer.objects.exists()
    [refusal] = [str(message) for message in response.context["messages"]]
    assert refusal.startswith("mx1.dept.example.edu:") and MX1 in refusal, refusal


def test_central_it_marks_a_found_server_known_with_a_note(scope, staff):
    tasks.discover_servers.apply()
    printer = FoundServer.objects.get(address=PRINTER)
    client = client_for(staff)

    client.post(
        reverse("relaytests:found-server-ignore", args=[printer.pk]), {"note": "the copier's scan-to-mail"}
    )

    page = client.get(reverse("relaytests:found-servers")).content.decode()
    coverage = unregistered.coverage()
    assert [f.address for f in coverage["known"]] == [PRINTER]
    assert PRINTER not in [f.address for f in coverage["unregistered"]]
    assert "the copier&#x27;s scan-to-mail" in page and "0 of 4" in page


def test_the_page_lists_the_unregistered_with_greeting_and_ptr_for_central_it_only(scope, staff, member):
    tasks.discover_servers.apply()
    tasks.discover_servers.apply()  # found again: no second row

    page = client_for(staff).get(reverse("relaytests:found-servers")).content.decode()

    assert FoundServer.objects.count() == 4
    assert "220 printer ESMTP" in page and "printer.dept.example.edu" in page and "nothing answered" in page
    assert client_for(member).get(reverse("relaytests:found-servers")).status_code == 404
    assert client_for(member).post(reverse("relaytests:found-servers-search")).status_code == 404


def test_a_network_too_large_to_sweep_is_named_and_skipped(scope, settings, staff):
    settings.RELAYTEST_SCOPE_NETWORKS = [f"{MX1}/31", "10.0.0.0/8"]
    settings.RELAYTEST_DISCOVERY_MAX_ADDRESSES = 1024

    assert unregistered.swept_networks() == [f"{MX1}/31"]
    page = client_for(staff).get(reverse("relaytests:found-servers")).content.decode()
    assert "Not swept, too many addresses" in page and "10.0.0.0/8" in page


def test_beat_sends_discovery_every_discovery_period(settings):
    settings.RELAYTEST_DISCOVERY_EVERY = 3600
    beat = Celery("beat-test", set_as_current=False)  # the tasks stay bound to the portal's app

    portal_celery.schedule_periodic_tasks(beat)

    entry = beat.conf.beat_schedule["discover mail servers"]
    assert (entry["task"], entry["schedule"]) == ("relaytests.tasks.discover_servers", 3600)
    assert settings.CELERY_TASK_ROUTES[entry["task"]] == {"queue": "probe.outside"}


def test_a_server_counts_as_registered_on_each_port_it_lists(department):
    loopback_server(department, REGISTERED, more_ports=[587])

    assert unregistered.registered_hosts() == {(REGISTERED, 25), (REGISTERED, 587)}
