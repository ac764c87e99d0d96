"""Issue 10: the report of every kind of verdict, as an admin sees it on a screen, a phone and paper.

The reports come from the real engine (the relaytest command) against loopback fake servers: an
open one (Postfix's greeting, every recipient accepted), a closed one and a greylisting one; the
open relay is the accepting report with every test message arrived. Each is stored as a finished
run of a server registered by address, as the portal shows it, and measured. The figures are
written to test-artifacts/layout.json.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from relaytests.info_views import INFO_PAGES
from relaytests.models import MailServer, TestRun
from relaytests.probe.report import Report
from relaytests.probe.suite import settle_deliveries
from tests.fakes.smtp import LOCAL_DOMAIN, FakeSMTPServer
from tests.portal import factories
from tests.portal.browser import (
    DESKTOP,
    PHONE,
    first_fix_step_y,
    first_snippet_y,
    page_height,
    printed_pages,
    record,
    screenshot,
    scrolls_sideways,
    serious_violations,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAKE_FOR_VERDICT = {"accepts_relay": "open", "secure": "closed", "inconclusive": "greylisting"}
VERDICTS = ("open_relay", "accepts_relay", "secure", "inconclusive")
FIRST_FIX_STEP_WITHIN_PX = 1500
MOST_PRINTED_PAGES = 3


def engine_report(behaviour: str) -> dict:
    """The relaytest command's JSON report on a fake server of that behaviour. In this process: the
    command's life as a process (exit codes, output on a pipe) is tests/probe/test_cli.py's business."""
    output = io.StringIO()
    with FakeSMTPServer(behaviour) as fake, contextlib.suppress(SystemExit):  # the verdict's exit code
        call_command("relaytest", "127.0.0.1", "--port", str(fake.port), "--json",
                     "--local-domain", LOCAL_DOMAIN, "--timeout", "5", stdout=output)  # fmt: skip
    return json.loads(output.getvalue())


def delivered_everything(accepting: dict) -> dict:
    """The accepting report as if the server had taken a test message for every accepted recipient and
    each had arrived at the canary: an open relay (a delivery proves only a message the host took)."""
    report = Report.from_dict(accepting)
    taken = [v for host in report.hosts for v in host.vectors if v.outcome == "accepted" and v.token]
    for vector in taken:
        vector.data_code, vector.data_reply = 250, "250 2.0.0 Ok: queued"
        vector.sent_at = "2026-11-27T10:00:30+00:00"
    tokens = [vector.token for vector in taken]
    chain = ["from mx.dept.example.edu (mx.dept.example.edu [127.0.0.1]) by canary with ESMTP"]
    arrivals = {
        token: {"received_at": "2026-11-27T10:00:31+00:00", "peer_address": "127.0.0.1",
                "received_chain": chain, "late": False}
        for token in tokens
    }  # fmt: skip
    settle_deliveries(report, arrivals)
    return report.to_dict()


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    built = {verdict: engine_report(fake) for verdict, fake in FAKE_FOR_VERDICT.items()}
    built["open_relay"] = delivered_everything(built["accepts_relay"])
    for verdict, report in built.items():
        assert report["verdict"] == verdict
    return built


def stored_run(department, report: dict, port: int = 25):
    server = factories.make_server(department, "127.0.0.1", kind="ip", port=port, mail_domain=LOCAL_DOMAIN,
                                   addresses=["127.0.0.1"])  # fmt: skip
    return factories.make_run(server, report=report, verdict=report["verdict"])


def inside_view(run: TestRun, report: dict) -> TestRun:
    """A part of the run from the inside vantage, with `report` as what it saw of the run's hosts."""
    [port] = {host["port"] for host in run.report["hosts"]}
    hosts = [{**host, "port": port} for host in report["hosts"]]
    probe = {**report["probe"], "vantage": "inside", "source_address": "127.0.0.99"}
    inside = {**report, "probe": probe, "hosts": hosts}
    return factories.make_run(
        run.server, report=inside, verdict=inside["verdict"], vantage="inside", part_of=run
    )


def measure(new_page, base_url: str, username: str, path: str, name: str) -> dict:
    desktop = new_page(DESKTOP)
    sign_in(desktop, base_url, username)
    assert desktop.goto(base_url + path).ok
    docs_as = "report-page.png" if name == "report-page" else ""
    screenshot(desktop, f"{name}-top.png", docs_as=docs_as)  # what a screen shows first
    figures = {
        "first_fix_step_y": first_fix_step_y(desktop),
        "first_snippet_y": first_snippet_y(desktop),
        "page_height": page_height(desktop),
        "printed_pages": printed_pages(desktop, name),
        "serious_violations": serious_violations(desktop),
    }
    desktop.emulate_media(media="print")  # for the eye: the printed summary as one long sheet
    desktop.set_viewport_size({"width": 680, "height": 900})
    screenshot(desktop, f"{name}-print.png", full_page=True)
    phone = new_page(PHONE, beside=desktop)
    desktop.close()  # done with: an open page goes on rendering
    assert phone.goto(base_url + path).ok
    screenshot(phone, f"{name}-phone.png")
    figures["phone_scrolls_sideways"] = scrolls_sideways(phone)
    navigation, menu = phone.locator("#site-nav"), phone.get_by_role("button", name="Menu")
    expect(navigation).to_be_hidden()  # folded behind the menu button, not half the screen
    menu.click()
    expect(navigation).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    return figures


# (name, verdict, the verdict of the run before, if any): a re-test after the fix lists what changed.
CASES = [(verdict, verdict, None) for verdict in VERDICTS] + [("secure-after-fix", "secure", "open_relay")]


@pytest.mark.parametrize(("case", "verdict", "before"), CASES, ids=[case for case, _, _ in CASES])
def test_the_report_fits_a_screen_a_phone_and_three_sheets(case, verdict, before, reports, new_page, live_server,
                                                           member, department):  # fmt: skip
    if before:  # the same server, tested before on the same port
        port = reports[verdict]["hosts"][0]["port"]
        earlier = {**reports[before], "hosts": [{**h, "port": port} for h in reports[before]["hosts"]]}
        stored_run(department, earlier)
    run = factories.make_run(MailServer.objects.first(), report=reports[verdict], verdict=verdict) if before \
        else stored_run(department, reports[verdict])  # fmt: skip
    url = reverse("relaytests:run", args=[run.pk])
    name = "report-page" if case == "open_relay" else f"report-{case}"
    figures = measure(new_page, live_server.url, member.get_username(), url, name)
    record(case, figures)
    assert figures["first_fix_step_y"] is not None
    assert figures["first_fix_step_y"] <= FIRST_FIX_STEP_WITHIN_PX
    assert figures["printed_pages"] <= MOST_PRINTED_PAGES
    assert not figures["phone_scrolls_sideways"]
    assert figures["serious_violations"] == []


def pages_seen(server, run, waiting, part) -> list[tuple[str, str]]:
    """(who, path) of every page a department member or central IT reads (the Django admin aside)."""
    info = [("member", reverse("relaytests:info", args=[page.slug])) for page in INFO_PAGES]
    return [
        ("anonymous", reverse("relaytests:home")),
        ("anonymous", reverse("login")),
        ("member", reverse("relaytests:home")),
        ("member", reverse("relaytests:department", args=[server.department.slug])),
        ("member", server.get_absolute_url()),
        ("member", reverse("relaytests:register")),
        ("member", reverse("relaytests:tokens")),
        ("member", reverse("relaytests:run", args=[waiting.pk])),
        ("member", reverse("relaytests:run", args=[part.pk])),
        ("member", "/no-such-page/"),
        *info,
        ("staff", reverse("relaytests:overview")),
        ("staff", reverse("relaytests:overview") + "?verdict=open_relay"),
        ("staff", reverse("relaytests:run", args=[run.pk])),
    ]


def test_every_page_a_member_or_central_it_reads_has_no_serious_accessibility_violation_and_fits_a_phone(
    reports, new_page, live_server, member, staff, department
):
    run = stored_run(department, reports["accepts_relay"])
    part = inside_view(run, reports["open_relay"])  # its page lists both views and the inside finding
    for port, verdict in ((2525, "open_relay"), (587, "secure"), (465, "inconclusive")):
        other = stored_run(factories.make_department(f"Dept {port}"), reports[verdict], port)
    inside_view(other, reports["open_relay"])  # the overview marks it "Relays from inside"
    factories.make_server(department, "mx.physics.example.edu")  # never tested
    waiting = factories.make_run(
        factories.make_server(department, "127.0.0.1", kind="ip", port=2526, addresses=["127.0.0.1"]),
        status=TestRun.Status.AWAITING_DELIVERY, verdict="accepts_relay", finished_at=timezone.now(),
        report=reports["accepts_relay"],
    )  # fmt: skip
    pages = {who: new_page(DESKTOP) for who in ("anonymous", "member", "staff")}
    for who, user in (("member", member), ("staff", staff)):
        sign_in(pages[who], live_server.url, user.get_username())
    phones = {who: new_page(PHONE, beside=page) for who, page in pages.items()}
    found, sideways = {}, []
    for who, path in pages_seen(run.server, run, waiting, part):
        pages[who].goto(live_server.url + path)
        found[f"{who} {path}"] = serious_violations(pages[who])
        if path == reverse("relaytests:overview"):
            screenshot(pages[who], "dashboard.png", docs_as="dashboard.png", full_page=True)
        phones[who].goto(live_server.url + path)
        sideways += [f"{who} {path}"] if scrolls_sideways(phones[who]) else []
    record("pages", found)
    record("pages_scrolling_sideways_on_a_phone", sideways)
    assert {path: violations for path, violations in found.items() if violations} == {}
    assert sideways == []


def test_the_evidence_prints_only_when_unfolded_or_printed_with_evidence(reports, page, live_server, member,
                                                                          department):  # fmt: skip
    run = stored_run(department, reports["accepts_relay"])
    sign_in(page, live_server.url, member.get_username())
    page.goto(live_server.url + reverse("relaytests:run", args=[run.pk]))
    summary_only = printed_pages(page)

    page.get_by_text("The full SMTP dialogue").click()  # the reader unfolds the dialogue
    with_dialogue = printed_pages(page)
    page.get_by_text("The full SMTP dialogue").click()
    page.evaluate("window.print = () => { window.printed = true; }")  # no print dialogue in a test
    page.get_by_role("button", name="Print with evidence").click()
    with_evidence = printed_pages(page)

    assert page.evaluate("window.printed") is True
    assert summary_only <= MOST_PRINTED_PAGES < with_dialogue < with_evidence
