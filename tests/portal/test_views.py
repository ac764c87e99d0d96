"""The pages and actions of the portal, as a department's mail admin and central IT use them.

Starting a test: the view creates the run and hands it to `relaytests.tasks.enqueue_run`, which
publishes from an on_commit hook. Inside a test's transaction that hook is captured, not run
(`django_capture_on_commit_callbacks`), so these tests reach no broker; the real broker, a dead
broker and the worker are the subject of the broker and fault tests.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from relaytests.models import MailServer, TestRun
from relaytests.probe.hygiene import vantage_warning
from relaytests.probe.report import Report
from relaytests.views import run_pages
from tests.dnsserver import ZoneServer
from tests.portal.conftest import client_for
from tests.portal.factories import (
    check,
    host,
    make_department,
    make_run,
    make_server,
    make_user,
    report,
    vector,
)

pytestmark = pytest.mark.django_db
Status = TestRun.Status
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ---- starting a test ----


def test_test_queues_a_run_of_the_servers_addresses_and_enqueues_it_on_commit(
    member, server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as enqueued:
        response = client_for(member).post(reverse("relaytests:server-test", args=[server.pk]))

    run = TestRun.objects.get()
    assert response["Location"] == run.get_absolute_url()
    assert (run.status, run.trigger, run.started_by, run.addresses) == (
        Status.QUEUED,
        "manual",
        member,
        ["192.0.2.25"],
    )
    assert len(run.probe_run_id) == 10
    assert len(enqueued) == 1


def test_retest_starts_a_new_run_of_the_same_server_marked_as_a_retest(member, server):
    finished = make_run(server, verdict="open_relay")

    response = client_for(member).post(reverse("relaytests:run-retest", args=[finished.pk]), follow=True)

    run = server.runs.first()
    assert (run.pk != finished.pk, run.trigger, run.status) == (True, "retest", Status.QUEUED)
    assert response.redirect_chain == [(run.get_absolute_url(), 302)]


def test_a_server_with_a_run_queued_or_running_gets_no_second_run(member, server):
    active = make_run(server, status=Status.RUNNING)

    response = client_for(member).post(reverse("relaytests:server-test", args=[server.pk]), follow=True)

    assert server.runs.count() == 1
    assert response.redirect_chain == [(active.get_absolute_url(), 302)]
    assert messages_of(response) == ["A test of this server is already queued or running; here it is."]


def test_a_user_over_the_hourly_cap_is_refused_with_the_time_they_may_start_again(
    member, department, server, settings
):
    settings.RELAYTEST_RUNS_PER_HOUR = 2
    other = make_server(department, target="mx2.physics.example.edu")
    make_run(other, started_by=member)
    make_run(other, started_by=member)

    response = client_for(member).post(reverse("relaytests:server-test", args=[server.pk]), follow=True)

    assert server.runs.count() == 0
    assert response.redirect_chain == [(server.get_absolute_url(), 302)]
    [message] = messages_of(response)
    assert message.startswith(
        "You have started 2 tests in the last hour, the most allowed. You can start the next one at "
    )


def test_runs_older_than_an_hour_and_other_users_runs_do_not_count_against_the_cap(
    member, staff, department, server, settings
):
    settings.RELAYTEST_RUNS_PER_HOUR = 1
    old = make_run(server, started_by=member)
    TestRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    make_run(server, started_by=staff)

    client_for(member).post(reverse("relaytests:server-test", args=[server.pk]))

    assert server.runs.filter(started_by=member, status=Status.QUEUED).count() == 1


# ---- registering ----


def test_registering_a_server_takes_the_member_to_its_page(member, department, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]
    data = {"department": department.pk, "what": "server", "target": "127.0.0.7", "mail_domain": ""}

    response = client_for(member).post(reverse("relaytests:register"), data, follow=True)

    server = MailServer.objects.get()
    assert (server.target, server.addresses, server.created_by) == ("127.0.0.7", ["127.0.0.7"], member)
    assert response.redirect_chain == [(server.get_absolute_url(), 302)]
    assert messages_of(response) == ["127.0.0.7 is registered. Press Test to test it."]


def test_the_register_page_offers_the_allowed_ports_and_registers_the_ones_ticked(
    member, department, settings
):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]
    settings.RELAYTEST_ALLOWED_PORTS = [25, 465, 587]
    client = client_for(member)

    page = client.get(reverse("relaytests:register")).content.decode()
    data = {
        "department": department.pk,
        "what": "server",
        "target": "127.0.0.7",
        "more_ports": ["587", "465"],
    }
    client.post(reverse("relaytests:register"), data)

    assert "Also test these ports" in page
    assert re.findall(r'name="more_ports" value="(\d+)"', page) == ["25", "465", "587"]
    assert MailServer.objects.get().ports == [25, 587, 465]


def test_registering_with_a_port_the_portal_does_not_test_says_which_it_does(member, department, settings):
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/8"]
    settings.RELAYTEST_ALLOWED_PORTS = [25, 587]
    data = {"department": department.pk, "what": "server", "target": "127.0.0.7", "more_ports": ["2525"]}

    response = client_for(member).post(reverse("relaytests:register"), data)

    assert response.status_code == 200
    assert "Port 2525 is not one this portal tests (25, 587)." in response.content.decode()
    assert not MailServer.objects.exists()


def test_registering_a_mail_domain_through_the_page_uses_its_mx_hosts(member, department, settings):
    settings.RELAYTEST_SCOPE_DOMAINS = ["example.edu"]
    data = {"department": department.pk, "what": "domain", "target": "physics.example.edu", "mail_domain": ""}
    with ZoneServer(
        "physics.example.edu. MX 10 mx.physics.example.edu.\nmx.physics.example.edu. A 130.59.1.25"
    ) as dns:
        settings.RELAYTEST_RESOLVER = dns.address
        response = client_for(member).post(reverse("relaytests:register"), data, follow=True)

    assert MailServer.objects.values_list("target", "kind", "addresses").get() == (
        "physics.example.edu",
        "domain",
        ["130.59.1.25"],
    )
    assert messages_of(response) == [
        "physics.example.edu is registered; its mail hosts mx.physics.example.edu are tested. Press Test to test them."
    ]


def test_the_register_page_offers_only_the_users_own_departments(member, department, other_department):
    form = client_for(member).get(reverse("relaytests:register")).context["form"]

    assert list(form.fields["department"].queryset) == [department]


def test_central_it_may_register_a_server_for_any_department(staff, department, other_department):
    form = client_for(staff).get(reverse("relaytests:register")).context["form"]

    assert set(form.fields["department"].queryset) == {department, other_department}


def test_a_user_of_no_department_is_told_to_ask_central_it(db):
    page = client_for(make_user("newcomer")).get(reverse("relaytests:register")).content.decode()

    assert "You are not a member of any department yet" in page
    assert 'name="target"' not in page


# ---- dashboards ----


def test_home_lists_the_members_servers_with_their_last_verdict(member, server):
    make_run(server, verdict="open_relay")
    make_run(server, status=Status.RUNNING)

    page = client_for(member).get(reverse("relaytests:home")).content.decode()

    assert server.target in page
    assert '<span class="verdict verdict-open_relay">Open relay</span>' in page
    assert "Running" in page


def test_anonymous_visitors_get_the_front_page_with_a_way_to_sign_in(client):
    page = client.get(reverse("relaytests:home")).content.decode()

    assert f'href="{reverse("login")}"' in page
    assert "My servers" not in page


def test_central_it_sees_open_relays_and_blocklisted_servers_first_with_counts(staff, department):
    rows = {
        "secure.example.edu": report("secure"),
        "open.example.edu": report("open_relay"),
        "listed.example.edu": report(
            "secure", hosts=[host(checks=[check("dnsbl-zen.spamhaus.org", "fail")])]
        ),
        "unsure.example.edu": report("inconclusive"),
    }
    for target, data in rows.items():
        make_run(make_server(department, target=target), verdict=data["verdict"], report=data)
    make_server(make_department("Chemistry"), target="new.example.edu")

    response = client_for(staff).get(reverse("relaytests:overview"))

    order = [row.target for row in response.context["rows"]]
    assert order[:2] == ["listed.example.edu", "open.example.edu"]
    assert order[-1] == "secure.example.edu"
    counts = {css: number for css, _, number, _then in response.context["counts"]}
    assert counts == {
        "open_relay": 1,
        "accepts_relay": 0,
        "inconclusive": 1,
        "secure": 2,
        "untested": 1,
        "blocklisted": 1,
    }
    assert '<span class="verdict verdict-blocklisted">On a blocklist</span>' in response.content.decode()


def test_the_overview_counts_filter_the_table_and_are_neutral_at_zero(staff, department):
    for target, verdict in (("open.example.edu", "open_relay"), ("secure.example.edu", "secure")):
        make_run(make_server(department, target=target), verdict=verdict, report=report(verdict))
    client = client_for(staff)

    page = client.get(reverse("relaytests:overview")).content.decode()
    only_open = client.get(reverse("relaytests:overview"), {"verdict": "open_relay"})

    assert (
        '<a class="verdict verdict-open_relay" href="?verdict=open_relay"><strong>1</strong> Open relay</a>'
        in page
    )
    assert '<a class="zero" href="?verdict=accepts_relay"><strong>0</strong> Accepts relay</a>' in page
    assert [row.target for row in only_open.context["rows"]] == ["open.example.edu"]
    assert 'aria-current="true"' in only_open.content.decode()


# ---- the run page ----


@pytest.fixture
def open_relay_run(server):
    hostile = "220 <script>alert('x')</script> ESMTP"
    data = report(
        "open_relay",
        hosts=[
            host(
                verdict="open_relay",
                banner=hostile,
                vectors=[vector("plain", "accepted", delivered=True), vector("percent-host", "rejected")],
                transcript=[
                    {"dir": "S", "line": hostile, "t": 0.01},
                    {"dir": "C", "line": "EHLO relaytest.invalid", "t": 0.02},
                ],
            )
        ],
    )
    start = timezone.now() - timedelta(seconds=95)
    return make_run(
        server, verdict="open_relay", report=data, started_at=start, finished_at=start + timedelta(seconds=95)
    )


def test_the_run_page_says_the_verdict_first_in_words_and_colour(member, open_relay_run):
    page = client_for(member).get(open_relay_run.get_absolute_url()).content.decode()

    body = page[page.index('<div class="run-body"') :]
    assert body.index('<section class="verdict-banner verdict-open_relay"') < body.index('class="host"')
    assert '<h2 id="verdict-heading">Open relay</h2>' in page
    assert "1 min 35 s" in page


def test_the_report_reads_verdict_then_what_to_do_then_checks_then_the_evidence_folded(member, server):
    """Issue 10: the fix comes right after the verdict; the vector table and the dialogue are folded."""
    sender_vectors = ["spoof-domain", "spoof-host", "spoof-iplit", "spoof-postmaster"]
    accepting = host(
        verdict="accepts_relay",
        checks=[check("starttls", "warn")],
        vectors=[vector(v, "accepted") for v in sender_vectors] + [vector("plain", "rejected")],
        transcript=[{"dir": "S", "line": "220 mail.physics.example.edu ESMTP Postfix", "t": 0.0}],
    )
    summary = "Accepts relaying: the server took mail for an outside recipient."  # the verdict in other words
    run = make_run(
        server, verdict="accepts_relay", report=report("accepts_relay", hosts=[accepting], summary=summary)
    )

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert summary not in page  # the verdict is said once, in one sentence
    order = [
        'class="verdict-banner',
        'id="what-to-do"',
        "data-fix-step",
        'id="checks-heading"',
        'id="evidence"',
        '<details class="vectors"',
        '<details class="transcript"',
    ]
    assert [page.index(marker) for marker in order] == sorted(page.index(marker) for marker in order)
    causes = re.findall(r'<li class="cause">(.*?)</li>', page, re.S)
    assert len(causes) == 1  # one entry for the cause, naming its four vectors, not one per vector
    assert causes[0].count("check_sender_access") == 1
    assert all(f'id="why-{v}"' in causes[0] for v in sender_vectors)
    assert "(accepted)" not in page and "(relay denied)" in page


def test_the_run_page_parses_each_report_once_into_the_engines_report(
    member, server, open_relay_run, monkeypatch
):
    newer = make_run(server, verdict="secure", report=report("secure"))  # compared with open_relay_run
    parsed = []
    from_dict = Report.from_dict
    monkeypatch.setattr(Report, "from_dict", lambda data: parsed.append(data) or from_dict(data))

    assert client_for(member).get(newer.get_absolute_url()).status_code == 200

    assert [p["verdict"] for p in parsed] == ["secure", "open_relay"]  # this run's and the previous run's


def test_server_strings_are_escaped_and_no_page_carries_inline_script(member, open_relay_run):
    response = client_for(member).get(open_relay_run.get_absolute_url())
    page = response.content.decode()

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    scripts = SCRIPT_TAG.findall(page)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_the_live_script_is_a_vendored_static_file(member, open_relay_run):
    page = client_for(member).get(open_relay_run.get_absolute_url()).content.decode()

    assert '<script src="/static/relaytests/live.js"></script>' in page
    assert finders.find("relaytests/live.js")


def test_the_report_shows_each_vector_sent_the_reply_and_the_dialogue_collapsed(member, open_relay_run):
    page = client_for(member).get(open_relay_run.get_absolute_url()).content.decode()

    assert "<code>RCPT TO:&lt;plain@canary.example.net&gt;</code>" in page
    assert "<code>554 5.7.1 Relay access denied</code>" in page
    assert "relayed: the test message arrived" in page
    assert re.search(
        r'<details class="transcript" id="transcript-1">\s*<summary>The full SMTP dialogue \(2 lines\)', page
    )


def test_since_last_run_lists_what_changed(member, server, open_relay_run):
    later = report(
        "accepts_relay",
        hosts=[host(vectors=[vector("plain", "accepted"), vector("percent-host", "rejected")])],
    )
    latest = make_run(server, verdict="accepts_relay", report=later)

    page = client_for(member).get(latest.get_absolute_url()).content.decode()

    assert "<h2>Since last run</h2>" in page
    assert "plain: now accepted (was relayed)" in page
    assert "now <strong>Accepts relay</strong> (was Open relay)" in page


def test_a_long_list_of_changes_since_last_run_is_folded_so_what_to_do_stays_near_the_top(member, server):
    ids = ["plain", "null-sender", "spoof-domain", "spoof-host", "spoof-iplit", "percent-host"]
    make_run(
        server,
        verdict="accepts_relay",
        report=report("accepts_relay", hosts=[host(vectors=[vector(v, "accepted") for v in ids])]),
    )
    fixed = make_run(
        server,
        verdict="secure",
        report=report("secure", hosts=[host(vectors=[vector(v, "rejected") for v in ids])]),
    )

    page = client_for(member).get(fixed.get_absolute_url()).content.decode()

    assert (
        '<details class="changes" id="changes"><summary>6 results changed or still a problem</summary>'
        in page
    )
    assert page.index('<details class="changes"') < page.index('id="what-to-do"')


def test_a_probe_inside_the_campus_networks_is_warned_about(member, server):
    inside = report("open_relay")
    inside["probe"].update(source_address="10.20.0.5", inside_internal_networks=True)
    outside = make_run(server, verdict="secure", report=report("secure"))
    warned = make_run(server, verdict="open_relay", report=inside)

    assert (
        "inside the university's own networks"
        not in client_for(member).get(outside.get_absolute_url()).content.decode()
    )
    page = client_for(member).get(warned.get_absolute_url()).content.decode()
    assert f'<p class="warning vantage">{escape(vantage_warning("10.20.0.5").detail)}</p>' in page


def test_an_active_run_shows_its_progress_so_far_and_refreshes_without_javascript(member, server):
    partial = report("inconclusive", hosts=[host(vectors=[vector("plain", "rejected")])])
    run = make_run(server, status=Status.RUNNING, report=partial)

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in page
    assert 'data-live="true"' in page
    assert "<strong>Running</strong>" in page
    assert "<td>plain</td>" in page
    assert "Re-test" not in page


def test_a_run_awaiting_canary_deliveries_shows_its_verdict_and_keeps_updating(member, server):
    make_run(
        server, verdict="secure", report=report("secure", hosts=[host(vectors=[vector("plain", "rejected")])])
    )
    waiting = make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=report("accepts_relay", hosts=[host(vectors=[vector("plain", "accepted")])]),
    )

    page = client_for(member).get(waiting.get_absolute_url()).content.decode()

    assert '<h2 id="verdict-heading">Accepts relay</h2>' in page
    assert "plain: now accepted (was rejected)" in page
    assert 'data-live="true"' in page and 'http-equiv="refresh"' in page
    assert "Waiting for canary deliveries" in page and "Not proven yet" in page
    assert (
        "within the wait" not in page
    )  # the engine's "no canary message arrived" is not shown while waiting
    assert f'action="{reverse("relaytests:run-retest", args=[waiting.pk])}"' in page


def test_a_finished_run_stops_refreshing_and_offers_retest_and_a_permalink(member, open_relay_run, settings):
    settings.SITE_URL = "https://relaytest.example.edu"
    page = client_for(member).get(open_relay_run.get_absolute_url()).content.decode()

    assert "http-equiv" not in page
    assert 'data-live="false"' in page
    assert f'action="{reverse("relaytests:run-retest", args=[open_relay_run.pk])}"' in page
    permalink = f"https://relaytest.example.edu/runs/{open_relay_run.pk}/"
    assert f'<a href="{permalink}">{permalink}</a>' in page


def test_the_live_fragment_is_the_changing_part_of_the_page_only(member, server):
    run = make_run(server, status=Status.QUEUED)

    fragment = client_for(member).get(reverse("relaytests:run-live", args=[run.pk])).content.decode()

    assert fragment.lstrip().startswith('<div class="run-body" data-live="true" data-version="queued:">')
    assert "<html" not in fragment
    assert "Waiting for a worker" in fragment


def test_a_failed_run_shows_its_reason(member, server):
    run = make_run(
        server, status=Status.FAILED, status_reason="The task queue is unreachable; nothing was tested."
    )

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert "<strong>Failed</strong>" in page
    assert "The task queue is unreachable; nothing was tested." in page


# ---- the server page ----


def test_the_server_page_lists_runs_newest_first_with_verdict_starter_and_duration(member, staff, server):
    start = timezone.now()
    make_run(
        server,
        verdict="open_relay",
        started_by=member,
        started_at=start,
        finished_at=start + timedelta(seconds=4),
    )
    make_run(server, verdict="secure", trigger="retest", started_by=staff)
    make_run(
        server, verdict="", trigger="schedule", status=Status.INTERRUPTED, status_reason="The worker stopped"
    )

    response = client_for(member).get(server.get_absolute_url())
    page = response.content.decode()

    assert [run.trigger for run in response.context["runs"]] == ["schedule", "retest", "manual"]
    assert "Schedule" in page and "Re-test button, central" in page and "Test button, alice" in page
    assert "4.0 s" in page
    assert "The worker stopped" in page


def test_the_run_page_names_each_hosts_port_in_its_section_and_its_checks(member, server):
    hosts = [
        host(checks=[check("starttls", "pass")]),
        host(port=465, implicit_tls=True, checks=[check("implicit-tls", "pass")]),
    ]
    run = make_run(server, verdict="secure", report=report("secure", hosts=hosts))

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert '<section class="host" aria-label="mail.physics.example.edu port 25">' in page
    assert "192.0.2.25 port 465 (TLS on connect)</span>" in page
    assert "<td>mail.physics.example.edu port 25</td><td>starttls</td>" in page
    assert "<td>mail.physics.example.edu port 465</td><td>implicit-tls</td>" in page


def test_the_server_page_lists_the_ports_tested(member, department):
    only_25 = make_server(department, target="mx1.physics.example.edu")
    three = make_server(department, target="mx2.physics.example.edu", more_ports=[587, 465])
    client = client_for(member)

    assert "<dt>Ports tested</dt><dd>25</dd>" in client.get(only_25.get_absolute_url()).content.decode()
    assert "<dt>Ports tested</dt><dd>25, 587, 465 " in client.get(three.get_absolute_url()).content.decode()


def test_the_server_page_offers_test_unless_a_run_is_active(member, server):
    test_action = f'action="{reverse("relaytests:server-test", args=[server.pk])}"'
    assert test_action in client_for(member).get(server.get_absolute_url()).content.decode()

    make_run(server, status=Status.QUEUED)
    page = client_for(member).get(server.get_absolute_url()).content.decode()
    assert test_action not in page
    assert "A test is waiting for a worker" in page


# ---- signing in and out ----


def test_signing_in_leads_to_the_page_asked_for(member, server):
    url = server.get_absolute_url()
    response = client_for(None).post(
        f"{reverse('login')}?next={url}",
        {"username": "alice", "password": "a long test password 42", "next": url},
    )

    assert response["Location"] == url


def test_a_password_reset_mails_a_link_that_lets_the_user_choose_a_new_password(client, member):
    client.post(reverse("password_reset"), {"email": "alice@example.edu"})

    [message] = mail.outbox
    assert message.to == ["alice@example.edu"]
    assert message.subject == "Choose a new password for the Relay Test Portal"
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", message.body).group(1)
    form_page = client.get(link, follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "another long password 7", "new_password2": "another long password 7"},
    )
    member.refresh_from_db()
    assert member.check_password("another long password 7")


def test_sign_out_is_a_post_from_every_page(member):
    client = client_for(member)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("relaytests:register")).status_code == 302


# ---- central IT's administration ----


def test_the_admin_shows_departments_with_members_servers_and_runs_read_only(
    department, server, open_relay_run
):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    client = client_for(admin)

    department_page = client.get(
        reverse("admin:relaytests_department_change", args=[department.pk])
    ).content.decode()
    run_page = client.get(
        reverse("admin:relaytests_testrun_change", args=[open_relay_run.pk])
    ).content.decode()

    assert 'name="memberships-0-user"' in department_page
    assert client.get(reverse("admin:relaytests_mailserver_changelist")).status_code == 200
    server_page = client.get(reverse("admin:relaytests_mailserver_change", args=[server.pk])).content.decode()
    assert 'name="department"' in server_page
    assert 'name="target"' not in server_page and 'name="addresses"' not in server_page
    assert 'name="latest_run"' not in server_page and 'name="latest_verdict"' not in server_page  # the state
    assert client.get(reverse("admin:relaytests_mailserver_add")).status_code == 403
    assert "&quot;verdict&quot;: &quot;open_relay&quot;" in run_page
    assert 'name="report"' not in run_page and 'name="status"' not in run_page
    assert client.get(reverse("admin:relaytests_testrun_add")).status_code == 403
    assert client.get(reverse("admin:relaytests_verdictchange_add")).status_code == 403
    assert client.get(reverse("admin:relaytests_canarydelivery_changelist")).status_code == 200


def test_central_it_in_no_department_is_pointed_to_the_overview_not_told_to_ask_itself(staff):
    page = client_for(staff).get(reverse("relaytests:home")).content.decode()

    assert f'href="{reverse("relaytests:overview")}"' in page
    assert "Ask central IT" not in page


# ---- the server as the rest of the Internet sees it (DNS) ----


def mx_check(*mail_hosts: tuple[int, str, list[str]]) -> dict:
    hosts = [
        {"preference": p, "name": n, "addresses": a, "alias_of": None, "ip_literal": False, "problem": None}
        for p, n, a in mail_hosts
    ]
    return {
        "id": "mx",
        "status": "pass",
        "detail": "MX of physics.example.edu: ...",
        "data": {"domain": "physics.example.edu", "null_mx": False, "implicit": False, "hosts": hosts},
    }


def test_a_domain_run_names_the_registered_servers_behind_each_mx_host(member, department, other_department):
    by_name = make_server(department, "mx1.physics.example.edu", addresses=["192.0.2.25"])
    by_address = make_server(department, "192.0.2.26", kind=MailServer.Kind.IP, addresses=["192.0.2.26"])
    hidden = make_server(other_department, "mx3.physics.example.edu", addresses=["192.0.2.27"])
    domain = make_server(
        department, "physics.example.edu", kind=MailServer.Kind.DOMAIN, addresses=["192.0.2.25"]
    )
    mx = mx_check(
        (10, "mx1.physics.example.edu", ["192.0.2.25"]),
        (20, "mx2.physics.example.edu", ["192.0.2.26"]),
        (30, "mx3.physics.example.edu", ["192.0.2.27"]),
    )
    run = make_run(domain, verdict="secure", report=report(checks=[mx], target="physics.example.edu"))

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>.*?</tr>", page, re.S)
    assert [(p, n) for p, n in rows] == [
        ("10", "mx1.physics.example.edu"),
        ("20", "mx2.physics.example.edu"),
        ("30", "mx3.physics.example.edu"),
    ]
    assert by_name.get_absolute_url() in page and by_address.get_absolute_url() in page
    assert hidden.get_absolute_url() not in page  # another department's server stays out of sight
    assert "not registered" in page


def test_dns_tls_and_hygiene_checks_are_one_compact_table(member, server):
    checks = [
        check("starttls", "warn"),
        check("ptr", "warn", "No reverse DNS"),
        check("dnsbl", "fail", "Listed"),
    ]
    run = make_run(server, verdict="secure", report=report(hosts=[host(checks=checks)]))

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    table = page.split('id="checks-heading"')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="check-(\w+)"><td>[^<]*</td><td>([\w-]+)</td>', table)
    assert rows == [("warn", "starttls"), ("warn", "ptr"), ("fail", "dnsbl")]
    assert "No reverse DNS" in table and "Listed" in table


# ---- the live status (issue 10) ----


def test_the_live_status_is_small_and_answers_304_while_nothing_changed(member, server, settings):
    settings.RELAYTEST_CANARY_WAIT = 900
    probed = timezone.now()
    run = make_run(
        server,
        status=TestRun.Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        finished_at=probed,
        report=report("accepts_relay", hosts=[host(vectors=[vector("plain", "accepted")])]),
    )
    client = client_for(member)
    url = reverse("relaytests:run-status", args=[run.pk])

    first = client.get(url)
    unchanged = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    TestRun.objects.filter(pk=run.pk).update(verdict="open_relay")
    changed = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == 200 and unchanged.status_code == 304 and changed.status_code == 200
    state = first.json()
    assert (state["state"], state["version"], state["live"]) == (
        "awaiting_delivery",
        "awaiting_delivery:accepts_relay",
        True,
    )
    assert state["waiting_until"] == (probed + timedelta(seconds=900)).isoformat()
    assert changed.json()["version"] == "awaiting_delivery:open_relay"


def test_an_outsider_gets_no_status_of_another_departments_run(outsider, other_department, server):
    run = make_run(server)
    assert client_for(outsider).get(reverse("relaytests:run-status", args=[run.pk])).status_code == 404


def test_a_probe_without_a_recorded_address_is_not_written_as_an_address(member, server):
    data = report("inconclusive")
    data["probe"]["source_address"] = ""
    run = make_run(server, verdict="inconclusive", report=data)

    page = client_for(member).get(run.get_absolute_url()).content.decode()

    assert "not recorded as" not in page
    assert (
        "Probe: from the outside vantage, address not recorded, greeting as <code>relaytest.invalid</code>."
        in page
    )


def test_every_time_on_the_report_and_the_dashboard_names_its_zone(member, server, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    run = make_run(server, verdict="secure", report=report("secure"))
    three_days_ago = timezone.now() - timedelta(days=3)
    TestRun.objects.filter(pk=run.pk).update(created_at=three_days_ago)
    MailServer.objects.filter(pk=server.pk).update(last_tested_at=three_days_ago)

    page = client_for(member).get(run.get_absolute_url()).content.decode()
    dashboard = client_for(member).get(reverse("relaytests:home")).content.decode()

    assert re.search(
        r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d CES?T</time> \(3\xa0days ago\)", page
    )
    assert re.search(r"\d\d:\d\d CES?T</time>, 3\xa0days ago", dashboard)


# ---- error pages (issue 10) ----


def test_a_missing_page_is_a_styled_404_with_the_navigation(member, settings):
    settings.PORTAL_HELP_CONTACT = "hostmaster@example.edu"
    response = client_for(member).get("/no-such-page/")

    page = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in page and 'id="site-nav"' in page and "portal.css" in page
    assert "hostmaster@example.edu" in page


def test_a_server_error_is_a_styled_500_page(member, server, monkeypatch):
    run = make_run(server)
    client = Client(raise_request_exception=False)
    client.force_login(member)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(run_pages, "_run_context", broken)
    response = client.get(run.get_absolute_url())

    assert response.status_code == 500
    page = response.content.decode()
    assert "<h1>Something went wrong</h1>" in page and 'id="site-nav"' in page
