"""The central dashboard's view over time and the alert preference, in Chromium: what central IT and a
member see, with no serious accessibility finding and no sideways scrolling on a phone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from relaytests.models import FoundServer, MailServer, Membership, TestRun, VerdictChange
from tests.portal import factories
from tests.portal.browser import PHONE, screenshot, scrolls_sideways, serious_violations, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_central_it_sees_the_counts_30_days_ago_the_weeks_changes_and_next_due(
    page: Page, new_page, live_server, staff, department
):
    server = factories.make_server(department)
    MailServer.objects.filter(pk=server.pk).update(created_at=timezone.now() - timedelta(days=60))
    old = factories.make_run(server, verdict="open_relay")
    TestRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    fixed = factories.make_run(server, verdict="secure")
    VerdictChange.objects.create(server=server, run=fixed, old_verdict="open_relay", new_verdict="secure")

    sign_in(page, live_server.url, staff.get_username())
    page.goto(live_server.url + reverse("relaytests:overview"))

    counts = page.get_by_role("navigation", name="Show servers by verdict")
    expect(counts.get_by_role("listitem").filter(has_text="Open relay")).to_contain_text("30 days ago: 1")
    changes = page.get_by_role("region", name="Changed in the last week")
    expect(changes.get_by_role("listitem")).to_have_count(1)
    expect(changes).to_contain_text("Open relay → Secure")
    expect(page.get_by_role("columnheader", name="Next due")).to_be_visible()
    screenshot(page, "overview-over-time.png", full_page=True)
    assert serious_violations(page) == []

    phone = new_page(PHONE, beside=page)
    phone.goto(live_server.url + reverse("relaytests:overview"))
    assert not scrolls_sideways(phone)


def test_a_member_turns_alert_mails_off_and_on_again(page: Page, live_server, member, department):
    sign_in(page, live_server.url, member.get_username())
    page.goto(live_server.url + reverse("relaytests:department", args=[department.slug]))

    page.get_by_role("button", name="Stop mailing me alerts").click()
    expect(page.get_by_role("button", name="Mail me alerts")).to_be_visible()
    assert Membership.objects.get(user=member).alerts is False
    assert serious_violations(page) == []

    page.get_by_role("button", name="Mail me alerts").click()
    expect(page.get_by_role("button", name="Stop mailing me alerts")).to_be_visible()
    assert Membership.objects.get(user=member).alerts is True


def test_central_it_reads_the_servers_nobody_registered_and_marks_one_known(
    page: Page, new_page, live_server, staff, department
):
    for n, greeting in ((2, "220 mx1.dept.example.edu ESMTP Postfix"), (4, "220 printer ESMTP")):
        FoundServer.objects.create(
            address=f"127.0.0.{n}", port=25, source="sweep", greeting=greeting, last_seen=timezone.now()
        )
    factories.make_server(department, "127.0.0.2", kind="ip", addresses=["127.0.0.2"])

    sign_in(page, live_server.url, staff.get_username())
    page.goto(live_server.url + reverse("relaytests:overview"))
    page.get_by_role("link", name="Mail servers in scope that nobody registered").click()

    expect(page.locator(".coverage")).to_have_text("1 of 2 mail servers found in scope are registered.")
    row = page.get_by_role("listitem").filter(has_text="127.0.0.4:25")
    expect(row).to_contain_text("220 printer ESMTP")
    expect(row.get_by_label("Department for 127.0.0.4:25")).to_have_value(str(department.pk))
    assert serious_violations(page) == []
    phone = new_page(PHONE, beside=page)
    phone.goto(page.url)
    screenshot(phone, "found-servers-phone.png", full_page=True)
    assert not scrolls_sideways(phone)

    row.get_by_label("Note on 127.0.0.4:25").fill("the copier")
    row.get_by_role("button", name="Mark as known").click()

    expect(page.get_by_role("list").filter(has_text="the copier")).to_contain_text("127.0.0.4:25: the copier")
    expect(page.get_by_text("Every mail server found is registered or marked as known.")).to_be_visible()
