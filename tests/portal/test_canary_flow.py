"""Confirmed delivery in the portal: what the run page and the server's history show, and the whole
flow with the real task: a run that waits for its test messages, is finalised, and is upgraded by a
delivery that comes late; then the same against a real open Postfix and the canary receiver.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from django.utils.html import escape

from relaytests.deliveries import record_message
from relaytests.management.commands.canary import record_in_long_running_process
from relaytests.models import CanaryDelivery, MailServer, TestRun, VerdictChange
from relaytests.probe.canary import parse_token, token_fields
from relaytests.probe.receiver import CanaryReceiver, Delivery
from relaytests.probe.vocabulary import Verdict
from relaytests.tasks import finalise_run, run_suite
from tests.fakes.smtp import BEHAVIOURS, LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.conftest import client_for
from tests.portal.factories import host, make_run, report, vector
from tests.portal.worker import loopback_server, queued_run
from tests.postfix import (
    INSTANCE_ADDRESSES,
    PROBE_SOURCE,
    RECEIVER_ADDRESS,
    free_port_on_all,
    postfix_instance,
)

Status = TestRun.Status
CHAIN = [
    "from relay.example.org (relay.example.org [192.0.2.80]) by canary-mx.example.edu with ESMTP",
    "from probe.example (unknown [198.51.100.7]) by relay.example.org (Postfix) with ESMTP",
]
ARRIVES_WITHIN = 60.0  # a bound for a local Postfix queue run, not a speed claim


def delivered_vector(vector_id: str, *, late: bool = False, delay_s: float = 12.5) -> dict:
    delivery = {
        "received_at": "2026-11-27T10:01:12+00:00",
        "peer_address": "192.0.2.80",
        "received_chain": CHAIN,
        "late": late,
        "delay_s": delay_s,
    }
    return {**vector(vector_id, "accepted", delivered=True), "delivery": delivery}


def delivery_report(*vectors: dict, verdict: str = "open_relay") -> dict:
    return report(verdict, hosts=[host(verdict=verdict, vectors=vectors)])


def page_of(run: TestRun, user) -> str:
    return client_for(user).get(run.get_absolute_url()).content.decode()


def rows_of(page: str) -> dict[str, str]:
    """Each vector's table row, by vector id."""
    rows = re.finditer(r'<tr class="outcome-[^"]*">\s*<td>([^<]+)</td>.*?</tr>', page, re.S)
    return {row[1]: row[0] for row in rows}


# ---- the run page ----


@pytest.mark.django_db
def test_each_vector_says_whether_its_test_message_was_delivered_how_fast_by_whom_and_how(member, server):
    run = make_run(
        server,
        verdict="open_relay",
        report=delivery_report(
            delivered_vector("plain"),
            vector("percent-hack", "accepted", delivered=False),
            vector("bang-path", "rejected"),
        ),
    )

    rows = rows_of(page_of(run, member))

    assert "Yes — relayed: the test message arrived" in rows["plain"]
    assert "after 12.5 s, delivered by 192.0.2.80" in rows["plain"]
    chain = re.search(
        r'<details class="received-chain" id="received-1-plain">\s*<summary>Received chain '
        r"\(2 hops\)</summary>\s*<pre>(.*?)</pre>",
        rows["plain"],
        re.S,
    )
    assert chain and chain[1].splitlines() == [f"Received: {hop}" for hop in CHAIN]
    assert "late" not in rows["plain"]
    assert "No: nothing arrived in the wait" in rows["percent-hack"]
    assert "Not attempted" in rows["bang-path"]


@pytest.mark.django_db
def test_a_delivery_after_the_run_was_final_is_marked_late(member, server):
    run = make_run(server, verdict="open_relay", report=delivery_report(delivered_vector("plain", late=True)))

    assert '<span class="late">late</span>' in rows_of(page_of(run, member))["plain"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "verdict, says",
    [("open_relay", "Relayed and delivered"), ("accepts_relay", "Accepted but not delivered")],
)
def test_the_verdict_says_relayed_and_delivered_or_accepted_but_not_delivered(member, server, verdict, says):
    run = make_run(server, verdict=verdict, report=delivery_report(verdict=verdict))

    page = page_of(run, member)

    assert f'<p class="delivery-explanation">{escape(Verdict(verdict).meaning)}</p>' in page
    assert Verdict(verdict).meaning.startswith(says)
    assert "queued, discarded or bounced" in Verdict.ACCEPTS_RELAY.meaning


@pytest.mark.django_db
def test_while_awaiting_delivery_the_page_says_until_when_and_keeps_polling(member, server, settings):
    settings.RELAYTEST_CANARY_WAIT = 900
    probed = datetime(2026, 11, 27, 10, 1, tzinfo=UTC)
    waiting = delivery_report(vector("plain", "accepted", delivered=False), verdict="accepts_relay")
    run = make_run(
        server, status=Status.AWAITING_DELIVERY, verdict="accepts_relay", finished_at=probed, report=waiting
    )

    page = page_of(run, member)

    assert re.search(
        r'Waiting for test messages until\s+<time class="waiting-until" '
        r'datetime="2026-11-27T10:16:00\+00:00">10:16 UTC</time>\s+\(<span class="minutes-left">0 min'
        r"</span> left\)",
        page,
    )
    assert 'data-live="true"' in page
    assert "Not proven yet: waiting for it" in rows_of(page)["plain"]
    assert "Accepted but not delivered" not in page  # not "not delivered" before the wait is over
    assert "Not proven yet" in page


@pytest.mark.django_db
def test_a_delivery_during_the_wait_is_already_proof(member, server):
    run = make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="open_relay",
        finished_at=timezone.now(),
        report=delivery_report(delivered_vector("plain")),
    )

    assert escape(Verdict.OPEN_RELAY.meaning) in page_of(run, member)


# ---- the server's history ----


@pytest.mark.django_db
def test_the_history_marks_a_run_upgraded_by_a_late_delivery(member, server):
    in_time = make_run(server, verdict="open_relay", report=delivery_report(delivered_vector("plain")))
    upgraded = make_run(
        server,
        verdict="open_relay",
        upgraded_late=True,
        report=delivery_report(
            delivered_vector("plain", late=True), delivered_vector("percent-hack", late=True)
        ),
    )
    VerdictChange.objects.create(
        server=server, run=upgraded, old_verdict="accepts_relay", new_verdict="open_relay"
    )

    page = client_for(member).get(server.get_absolute_url()).content.decode()

    history = re.findall(r'<tr>\s*<td><a href="/runs/(\d+)/">(.*?)</tr>', page, re.S)
    assert {int(pk) for pk, row in history if "upgraded by a late delivery" in row} == {upgraded.pk}
    assert {int(pk) for pk, _ in history} == {in_time.pk, upgraded.pk}
    [change] = re.findall(r"<li>.*?</li>", page.split("<h2>Verdict changes</h2>")[1].split("</ul>")[0], re.S)
    assert "Accepts relay → " in change and "upgraded by a late delivery" in change


# ---- the whole flow, with the real task ----


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
def test_a_run_waits_is_finalised_then_a_late_delivery_upgrades_it(member, department):
    with FakeSMTPServer(BEHAVIOURS["open"]) as fake:
        server = loopback_server(department, port=fake.port, mail_domain=LOCAL_DOMAIN)
        run = queued_run(server)
        run_suite.apply((run.pk,))

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.AWAITING_DELIVERY, "accepts_relay")
    assert finalise_run(run.pk)
    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "accepts_relay")
    plain = next(v for v in run.report["hosts"][0]["vectors"] if v["id"] == "plain")
    assert plain["delivered"] is False

    [row] = record_message([canary_arrival(plain["token"], run)])  # the relay's queue let go at last

    run.refresh_from_db()
    assert row.late
    assert (run.status, run.verdict, run.report["verdict"]) == (Status.DONE, "open_relay", "open_relay")
    assert [(c.old_verdict, c.new_verdict) for c in VerdictChange.objects.filter(run=run).order_by("pk")] == [
        ("", "accepts_relay"),
        ("accepts_relay", "open_relay"),
    ]
    page = page_of(run, member)
    assert '<span class="late">late</span>' in rows_of(page)["plain"]
    assert escape(Verdict.OPEN_RELAY.meaning) in page
    history = client_for(member).get(server.get_absolute_url()).content.decode()
    assert history.count("upgraded by a late delivery") == 2  # the run's row and its verdict change
    server.refresh_from_db()
    assert (server.latest_run, server.latest_verdict) == (
        run,
        "open_relay",
    )  # the state follows, same transaction


def canary_arrival(token: str, run: TestRun) -> Delivery:
    fields = token_fields(token)
    return Delivery(
        token=token,
        run_id=run.probe_run_id,
        host_tag=fields.host_tag,
        vector_id="plain",
        received_at=datetime.now(UTC),
        peer_address="127.0.0.1",
        received_chain=("from mx.dept.example.edu by canary-mx.example.edu",),
        mail_from="",
        rcpt_tos=(f"{token}@canary.relaytest.invalid",),
        message_key=f"<{token}>",
    )


@pytest.mark.postfix
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
async def test_an_open_postfix_relays_to_the_portals_receiver_and_the_run_is_proven(department, settings):
    settings.RELAYTEST_CANARY_DOMAIN = "canary.test"
    settings.RELAYTEST_SOURCE_ADDRESS = PROBE_SOURCE
    record = sync_to_async(record_message)
    async with CanaryReceiver(
        settings.RELAYTEST_CANARY_DOMAIN,
        settings.RELAYTEST_CANARY_SECRET,
        record,
        host=RECEIVER_ADDRESS,
        port=0,
    ) as receiver:
        with postfix_instance(
            "open",
            canary_domain=settings.RELAYTEST_CANARY_DOMAIN,
            canary_relay=(RECEIVER_ADDRESS, receiver.port),
        ) as instance:
            server = await sync_to_async(loopback_server)(department, instance.address, port=instance.port)
            run = await sync_to_async(queued_run)(server)
            await asyncio.to_thread(run_suite.apply, (run.pk,))
            run = await until_done(run)

    assert (run.status, run.verdict) == (Status.DONE, "open_relay")  # every message in: finalised early
    plain = next(v for v in run.report["hosts"][0]["vectors"] if v["id"] == "plain")
    assert (plain["delivered"], plain["delivery"]["peer_address"]) == (True, instance.address)
    assert f"for <{plain['token']}@canary.test>" in plain["delivery"]["received_chain"][0]
    arrived = await sync_to_async(set)(CanaryDelivery.objects.filter(run=run).values_list("token", flat=True))
    assert {parse_token(settings.RELAYTEST_CANARY_SECRET, t).run_id for t in arrived} == {run.probe_run_id}


async def until_done(run: TestRun) -> TestRun:
    async with asyncio.timeout(ARRIVES_WITHIN):
        while True:
            await run.arefresh_from_db()
            if run.status == Status.DONE:
                return run
            await asyncio.sleep(0.2)


@pytest.mark.postfix
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_broker")
async def test_of_two_mx_hosts_only_the_open_one_is_proven_open(department, settings):
    settings.RELAYTEST_CANARY_DOMAIN = "canary.test"
    settings.RELAYTEST_SOURCE_ADDRESS = PROBE_SOURCE
    closed, relaying = INSTANCE_ADDRESSES["closed"], INSTANCE_ADDRESSES["open"]
    port = free_port_on_all(closed, relaying)
    record = sync_to_async(record_in_long_running_process)
    async with CanaryReceiver(
        settings.RELAYTEST_CANARY_DOMAIN,
        settings.RELAYTEST_CANARY_SECRET,
        record,
        host=RECEIVER_ADDRESS,
        port=0,
    ) as receiver:
        with (
            postfix_instance("closed", port=port),
            postfix_instance(
                "open",
                canary_domain=settings.RELAYTEST_CANARY_DOMAIN,
                port=port,
                canary_relay=(RECEIVER_ADDRESS, receiver.port),
            ),
        ):
            server = await MailServer.objects.acreate(
                department=department,
                target="dept.example.edu",
                port=port,
                kind=MailServer.Kind.DOMAIN,
                addresses=[closed, relaying],
            )
            run = await sync_to_async(queued_run)(server)
            await asyncio.to_thread(run_suite.apply, (run.pk,))
            run = await until_done(run)

    hosts = {h["address"]: h for h in run.report["hosts"]}
    assert (hosts[closed]["verdict"], hosts[relaying]["verdict"]) == ("secure", "open_relay")
    assert not any(v["delivered"] for v in hosts[closed]["vectors"])
    assert any(v["delivered"] for v in hosts[relaying]["vectors"])
    assert (run.verdict, run.report["unexpected_deliveries"]) == ("open_relay", [])
