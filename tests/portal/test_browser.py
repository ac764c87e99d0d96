"""The whole flow in a real browser: Playwright driving Debian's Chromium against a live server and a
real Celery worker on Redis, testing loopback fake SMTP servers that the test's settings put in scope.

A department's mail admin signs in, registers the server, starts a test, watches it progress without
reloading (through the short canary wait, as no test message arrives), reads the verdict (it accepts
outside recipients) and the guidance for the failing vector, "fixes" the server, re-tests, reads that
it is now secure and what changed, and finds both runs in the server's history. Screenshots go to
test-artifacts/ (gitignored), so a test run leaves the work tree as it was.

Issue 10: while a run waits, the page polls a small status that answers 304 while nothing changed,
and leaves the report alone: a selection in it survives a minute's worth of polls.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from relaytests.models import TestRun
from tests.fakes.smtp import BEHAVIOURS, LOCAL_DOMAIN, FakeSMTPServer
from tests.portal.browser import ARTIFACTS, record, sign_in
from tests.portal.factories import accepted_report, make_run, make_server
from tests.portal.worker import REDIS_URL, celery_worker, publishing_to

RUN_FINISHES_WITHIN_MS = 120_000  # a bound for a stuck run, not a speed claim
CANARY_WAIT = "3"  # seconds: the run waits for test messages, then its finalising task settles it

# Every reply 40 ms late (under the probe's mark of a slow reply, so no tarpit) stretches the run
# over several seconds, so the page is seen while the run works. Not a slow greeting: the probe
# packs the vectors of a server slow to greet onto few connections.
SLOW_OPEN = dataclasses.replace(BEHAVIOURS["open"], tarpit_after_errors=0, tarpit_seconds=0.04)
SLOW_CLOSED = dataclasses.replace(BEHAVIOURS["closed"], tarpit_after_errors=0, tarpit_seconds=0.04)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
A_MINUTE_OF_POLLS = 30  # at the default 2 s: the polls of a minute, here made 50 ms apart


@pytest.fixture
def loopback_in_scope(settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]
    settings.RELAYTEST_SCOPE_DOMAINS = []
    settings.RELAYTEST_CANARY_WAIT = int(CANARY_WAIT)  # what the page says; the worker gets it below
    return settings


def allow_port(settings, port: int) -> None:
    """The fake servers listen on a random high port, which the portal's default ports do not include."""
    settings.RELAYTEST_ALLOWED_PORTS = [*settings.RELAYTEST_ALLOWED_PORTS, port]


@pytest.mark.broker
def test_sign_in_register_test_watch_retest_and_see_the_history(
    page: Page, live_server, member, department, loopback_in_scope
):
    ARTIFACTS.mkdir(exist_ok=True)
    with publishing_to(REDIS_URL), celery_worker(RELAYTEST_CANARY_WAIT=CANARY_WAIT) as worker:
        with FakeSMTPServer(SLOW_OPEN) as open_server:
            port = open_server.port
            allow_port(loopback_in_scope, port)
            sign_in(page, live_server.url, member.get_username())
            register(page, f"127.0.0.1:{port}")
            expect(page.get_by_role("heading", level=1)).to_have_text(f"127.0.0.1:{port}")

            page.get_by_role("button", name="Test", exact=True).click()
            watch_until_final(page)
            expect(page.locator(".verdict-banner")).to_have_class("verdict-banner verdict-accepts_relay")
            expect(page.locator(".run-body")).to_contain_text("127.0.0.1")
            expect(page.locator(".messages")).to_have_count(0)  # "The test is queued" went with its state
            expect(page.locator("#run-announcer")).to_contain_text("Verdict: Accepts relay")
            page.screenshot(path=ARTIFACTS / "report-accepts-relay.png", full_page=True)
            read_the_guidance(page)

        with FakeSMTPServer(SLOW_CLOSED, port=port):  # the admin fixed the server
            page.get_by_role("button", name="Re-test").first.click()
            watch_until_final(page)
            expect(page.locator(".verdict-banner")).to_have_class("verdict-banner verdict-secure")
            expect(page.locator("section.since")).to_contain_text("Since last run")
            page.screenshot(path=ARTIFACTS / "report-fixed.png", full_page=True)
            page.screenshot(path=ARTIFACTS / "report-fixed-top.png")  # what a screen shows first
        assert worker.process.poll() is None

    page.get_by_role("link", name=f"127.0.0.1:{port}").first.click()
    history = page.locator("table.runs tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Re-test")
    expect(history.nth(1)).to_contain_text("Test")
    assert list(TestRun.objects.values_list("verdict", flat=True)) == ["secure", "accepts_relay"]


def register(page: Page, target: str) -> None:
    page.get_by_role("link", name="Register a server").first.click()
    page.get_by_label("Hostname, IP address or mail domain").fill(target)
    page.get_by_label("The server's mail domain (optional)").fill(LOCAL_DOMAIN)
    page.get_by_role("button", name="Register").click()


def watch_until_final(page: Page) -> None:
    """The run page while the run works, then its verdict swapped in by the page's script, no reload."""
    body = page.locator(".run-body")
    expect(body).to_have_attribute("data-live", "true")
    page.evaluate("window.loadedOnce = true")  # a reload would lose this
    expect(page.locator(".run-body .status")).to_contain_text(
        "1 host started so far", timeout=RUN_FINISHES_WITHIN_MS
    )
    expect(page.locator(".verdict-banner")).to_be_visible(timeout=RUN_FINISHES_WITHIN_MS)
    expect(body).to_have_attribute("data-live", "false", timeout=RUN_FINISHES_WITHIN_MS)
    assert page.evaluate("window.loadedOnce") is True


def read_the_guidance(page: Page) -> None:
    """Issue 5: the run page's guidance names the vector that got through and the central relay hub."""
    guidance = page.locator("section.guidance").first
    guidance.scroll_into_view_if_needed()
    expect(page.locator("#what-to-do-heading")).to_have_text("What to do")
    expect(guidance.locator("#why-plain")).to_contain_text("plain")
    hub = guidance.get_by_role("heading", name=f"Recommended: send through {settings.PORTAL_RELAY_HUB}")
    expect(hub).to_be_visible()
    guidance.screenshot(path=ARTIFACTS / "guidance-accepts-relay.png")


def test_a_selection_in_the_report_survives_a_minute_of_live_updates_and_unchanged_polls_get_304(
    page: Page, live_server, member, department, settings
):
    settings.PORTAL_LIVE_POLL_MS = 50
    settings.RELAYTEST_CANARY_WAIT = 900
    server = make_server(department, "127.0.0.1", kind="ip", addresses=["127.0.0.1"])
    run = make_run(server, status=TestRun.Status.AWAITING_DELIVERY, verdict="accepts_relay",
                   finished_at=timezone.now(), report=accepted_report())  # fmt: skip
    polls = []
    page.on(
        "response", lambda response: polls.append(response.status) if "/status/" in response.url else None
    )
    sign_in(page, live_server.url, member.get_username())
    page.goto(live_server.url + run.get_absolute_url())
    expect(page.locator(".status")).to_contain_text("Waiting for test messages until")
    expect(page.locator(".status")).to_contain_text("min left")
    snippet = page.locator(".what-to-do .snippet code").first
    snippet.select_text()
    selected = page.evaluate("getSelection().toString()")

    while len(polls) < A_MINUTE_OF_POLLS:
        page.wait_for_event("response", lambda response: "/status/" in response.url, timeout=60_000)

    record("live_polls", {"polls": len(polls), "not_modified": polls.count(304)})
    assert selected and page.evaluate("getSelection().toString()") == selected
    assert polls[0] == 200 and set(polls[1:]) == {304}
    copy = page.get_by_role("button", name="Copy").first
    copy.click()
    expect(page.get_by_role("button", name="Copied")).to_have_count(1)

    TestRun.objects.filter(pk=run.pk).update(status=TestRun.Status.DONE)  # the wait is over
    expect(page.locator(".run-body")).to_have_attribute("data-live", "false", timeout=RUN_FINISHES_WITHIN_MS)
    expect(page.locator("#run-announcer")).to_have_text("Finished. Verdict: Accepts relay.")
    expect(page.locator(".status")).to_have_count(0)
