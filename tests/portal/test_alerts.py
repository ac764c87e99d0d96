"""Alerts, mailed through a real SMTP receiver on loopback (aiosmtpd) as the portal's mail server."""

from __future__ import annotations

import email
import socket
import time
from datetime import timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from portal.celery import app as celery_app
from relaytests import alerts, runs
from relaytests.deliveries import finalise, record_message
from relaytests.models import Alert, Membership, TestRun
from relaytests.tasks import ALERT_RETRY_FIRST, reap_stale_runs, send_alert
from tests.portal import factories
from tests.portal.conftest import client_for
from tests.portal.factories import TOKEN, accepted_report, delivery_of, host, report, vector
from tests.portal.worker import celery_worker

# Committed for real: an alert is sent once the transaction that wrote it commits.
pytestmark = pytest.mark.django_db(transaction=True)

Status = TestRun.Status
CENTRAL_IT = "relay-alerts@it.example.edu"
CONTACT = "postmaster@physics.example.edu"


class Inbox:
    """aiosmtpd's handler: every message it is given, with its envelope recipients."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 2.0.0 Ok: queued"

    @property
    def subjects(self) -> list[str]:
        return [message["Subject"] for _, message in self.messages]

    def text(self, index: int = -1) -> str:
        return self.messages[index][1].get_body(("plain",)).get_content()

    def html(self, index: int = -1) -> str:
        return self.messages[index][1].get_body(("html",)).get_content()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MailServer:
    """The portal's mail server: a loopback port, with the receiver started (and stopped) by the test."""

    def __init__(self, port: int):
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> Inbox:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self.inbox

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server(settings):
    """The portal mails through SMTP to a loopback port; its alert tasks run in this process."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    settings.PORTAL_ALERT_EMAIL = CENTRAL_IT
    settings.SITE_URL = "https://relaytest.example.edu"
    celery_app.conf.task_always_eager = True
    server = MailServer(port)
    yield server
    server.stop()
    celery_app.conf.task_always_eager = False


@pytest.fixture
def inbox(mail_server) -> Inbox:
    return mail_server.start()


@pytest.fixture
def alerted_server(server):
    server.department.contact_email = CONTACT
    server.department.save()
    return server


def finished(server, verdict: str, **fields) -> TestRun:
    """A run of the server that the worker finishes now with a report of that verdict."""
    run = factories.make_run(server, status=Status.RUNNING)
    assert runs.finish(run.pk, report(verdict, hosts=[host(verdict=verdict, **fields)])) == Status.DONE
    return TestRun.objects.get(pk=run.pk)


def relayed() -> dict:
    return {"vectors": [vector("plain", "accepted", delivered=True)], "reason": "a test message arrived"}


def listed(zone: str = "zen.spamhaus.org") -> dict:
    detail = f"192.0.2.25 is listed on {zone}; ask for removal at https://check.spamhaus.org/"
    return {"id": "dnsbl", "status": "fail", "detail": detail, "data": {"zone": zone, "listed": True}}


def certificate(expires_in: timedelta) -> dict:
    not_after = (timezone.now() + expires_in).isoformat()
    return {"id": "starttls", "status": "pass", "detail": "STARTTLS works", "data": {"not_after": not_after}}


def test_secure_to_open_mails_the_department_its_members_and_central_it_once(alerted_server, member, inbox):
    finished(alerted_server, "secure")
    assert inbox.messages == []  # nothing to tell about a secure server

    run = finished(alerted_server, "open_relay", **relayed())

    [(recipients, message)] = inbox.messages
    assert sorted(recipients) == sorted([CONTACT, member.email, CENTRAL_IT])
    assert "mail.physics.example.edu is an open relay" in message["Subject"]
    text = inbox.text()
    assert "is an open relay: a test message sent through it to an outside address arrived" in text
    assert f"Since {run.created_at:%Y-%m-%d}" in text
    assert "What to do first: Close third-party relay (main.cf): List who may relay" in text  # Postfix's
    assert "smtpd_relay_restrictions = permit_mynetworks" in text  # with the change to make
    assert f"https://relaytest.example.edu/runs/{run.pk}/" in text
    assert f'href="https://relaytest.example.edu/runs/{run.pk}/"' in inbox.html()
    assert Alert.objects.get().sent_at is not None


def test_open_to_secure_mails_that_it_is_fixed(alerted_server, inbox):
    opened = finished(alerted_server, "open_relay", **relayed())
    finished(alerted_server, "secure")

    assert len(inbox.messages) == 2
    assert "no longer relays" in inbox.subjects[1]
    text = inbox.text()
    assert "no longer relays: every relay attempt was refused" in text
    assert f"it had been so since {opened.created_at:%Y-%m-%d}" in text and "What to do first" not in text


def test_an_unchanged_state_mails_nothing_more(alerted_server, inbox):
    finished(alerted_server, "secure")
    finished(alerted_server, "secure")
    finished(alerted_server, "open_relay", **relayed())
    finished(alerted_server, "open_relay", **relayed())
    finished(alerted_server, "open_relay", **relayed())

    assert len(inbox.messages) == 1 and Alert.objects.count() == 1


def test_an_inconclusive_run_is_no_fix(alerted_server, inbox):
    finished(alerted_server, "open_relay", **relayed())
    finished(alerted_server, "inconclusive")

    assert len(inbox.messages) == 1  # a timeout says nothing about relaying


def test_what_a_run_could_not_tell_about_stays_as_it_was(alerted_server, inbox):
    unknown_zone = {**listed(), "status": "error", "detail": "could not check"}
    finished(alerted_server, "open_relay", checks=[listed(), certificate(timedelta(days=3))], **relayed())
    finished(alerted_server, "inconclusive")  # no certificate seen, no blocklist asked
    finished(alerted_server, "inconclusive", checks=[unknown_zone])

    assert len(inbox.messages) == 1
    assert "is an open relay" in inbox.subjects[0]  # the most urgent first
    assert inbox.text().index("open relay") < inbox.text().index("blocklist") < inbox.text().index("certif")


def test_a_new_blocklist_listing_is_mailed_with_how_to_get_off_it(alerted_server, inbox):
    finished(alerted_server, "secure", checks=[listed()])
    finished(alerted_server, "secure", checks=[listed(), listed("bl.spamcop.net")])
    finished(alerted_server, "secure", checks=[listed(), listed("bl.spamcop.net")])
    not_listed = {**listed("bl.spamcop.net"), "status": "pass", "detail": "not listed"}
    finished(alerted_server, "secure", checks=[listed(), not_listed])

    assert len(inbox.messages) == 3
    assert "is off the blocklist bl.spamcop.net" in inbox.subjects[2]
    assert "is on the blocklist zen.spamhaus.org" in inbox.subjects[0]
    assert "is on the blocklist bl.spamcop.net" in inbox.subjects[1]
    assert "What to do first: 192.0.2.25 is listed on bl.spamcop.net; ask for removal" in inbox.text(1)


def test_a_certificate_that_expires_within_14_days_then_expired_then_renewed(alerted_server, inbox):
    finished(alerted_server, "secure", checks=[certificate(timedelta(days=30))])
    assert inbox.messages == []
    finished(alerted_server, "secure", checks=[certificate(timedelta(days=5))])
    finished(alerted_server, "secure", checks=[certificate(timedelta(days=-1))])
    finished(alerted_server, "secure", checks=[certificate(timedelta(days=365))])

    assert [s.split("] ")[1] for s in inbox.subjects] == [
        "mail.physics.example.edu has a certificate about to expire",
        "mail.physics.example.edu has an expired certificate",
        "mail.physics.example.edu has a valid certificate again",
    ]
    assert "What to do first: Renew the TLS certificate" in inbox.text(0)


def test_three_inconclusive_runs_in_a_row_are_mailed_once(alerted_server, inbox):
    first = finished(alerted_server, "inconclusive")
    finished(alerted_server, "inconclusive")
    assert inbox.messages == []
    finished(alerted_server, "inconclusive")
    finished(alerted_server, "inconclusive")

    assert len(inbox.messages) == 1 and "gives no clear answer" in inbox.subjects[0]
    assert f"Since {first.created_at:%Y-%m-%d %H:%M}" in inbox.text()
    finished(alerted_server, "secure")
    assert "gives a clear answer again" in inbox.subjects[1]


def test_a_run_waiting_for_deliveries_alerts_when_final_and_a_late_delivery_alerts_again(
    alerted_server, inbox
):
    run = factories.make_run(alerted_server, status=Status.RUNNING)
    assert runs.finish(run.pk, accepted_report(), [TOKEN]) == Status.AWAITING_DELIVERY
    assert inbox.messages == []  # a verdict so far is no news yet
    finalise(run.pk)
    assert "accepts relaying" in inbox.subjects[0]

    record_message([delivery_of(run)])  # after the run was final: late

    assert len(inbox.messages) == 2 and "is an open relay" in inbox.subjects[1]


def test_a_late_delivery_to_an_older_run_alerts_nobody(alerted_server, inbox):
    older = factories.make_run(alerted_server, verdict="accepts_relay", report=accepted_report())
    finished(alerted_server, "secure")

    record_message([delivery_of(older)])

    assert inbox.messages == []  # the newer run tells how the server stands


def test_a_mail_server_down_fails_no_run_and_the_alert_goes_once_it_is_up(
    alerted_server, mail_server, monkeypatch
):
    celery_app.conf.task_always_eager = False
    queued: list[int] = []
    monkeypatch.setattr(send_alert, "apply_async", lambda args, **options: queued.append(args[0]))
    run = finished(alerted_server, "open_relay", **relayed())  # nothing listens on the mail port

    assert (run.status, run.verdict) == (Status.DONE, "open_relay")
    alert = Alert.objects.get()
    assert queued == [alert.pk] and alert.queued and alert.sent_at is None
    with pytest.raises(OSError):  # the task retries on it (`autoretry_for`)
        alerts.send(alert.pk)
    alert.refresh_from_db()
    assert alert.sent_at is None

    inbox = mail_server.start()
    assert alerts.send(alert.pk) is True
    assert alerts.send(alert.pk) is False  # a redelivered task sends nothing more
    assert len(inbox.messages) == 1


@pytest.mark.broker
def test_a_worker_retries_the_alert_until_the_mail_server_is_up_and_it_arrives_once(
    alerted_server, mail_server, redis_broker
):
    celery_app.conf.task_always_eager = False
    mail_settings = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mail_server.port),
        "PORTAL_ALERT_EMAIL": CENTRAL_IT,
    }
    with celery_worker(**mail_settings) as worker:
        finished(alerted_server, "open_relay", **relayed())  # nothing listens on the mail port
        alert = Alert.objects.get()
        wait_until(lambda: "Retry in" in worker.output(), worker)

        inbox = mail_server.start()
        wait_until(lambda: Alert.objects.filter(pk=alert.pk, sent_at__isnull=False).exists(), worker)
        time.sleep(2 * ALERT_RETRY_FIRST)  # room for a second mail, were one on its way

    assert len(inbox.messages) == 1 and "is an open relay" in inbox.subjects[0]


def wait_until(condition, worker, within: float = 60.0) -> None:
    """Poll `condition`; fail with the worker's log when it never holds (a bound, not a speed claim)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting; the worker's log:\n{worker.output()}")
        time.sleep(0.2)


def test_an_alert_the_broker_did_not_take_is_queued_by_the_reaper(alerted_server, inbox, monkeypatch):
    def broker_down(*args, **kwargs):
        raise OSError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(send_alert, "apply_async", broker_down)
        finished(alerted_server, "open_relay", **relayed())
    alert = Alert.objects.get()
    assert not alert.queued and inbox.messages == []
    Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(hours=1))

    reap_stale_runs.apply()
    reap_stale_runs.apply()

    assert len(inbox.messages) == 1


def test_a_member_turns_alerts_off_for_themselves_but_not_for_the_contact_or_central_it(
    alerted_server, member, staff, inbox
):
    client = client_for(member)
    page = client.get(f"/departments/{alerted_server.department.slug}/").content.decode()
    assert "Stop mailing me alerts" in page
    client.post(f"/departments/{alerted_server.department.slug}/alerts/", {"alerts": "off"})
    assert Membership.objects.get(user=member).alerts is False
    assert "Mail me alerts" in client.get(f"/departments/{alerted_server.department.slug}/").content.decode()

    finished(alerted_server, "open_relay", **relayed())

    [(recipients, _)] = inbox.messages
    assert sorted(recipients) == sorted([CONTACT, CENTRAL_IT])
    assert client_for(staff).post(f"/departments/{alerted_server.department.slug}/alerts/").status_code == 404


def test_the_recipients_are_each_named_once_and_none_empty(alerted_server, member, settings):
    settings.PORTAL_ALERT_EMAIL = ""
    member.email = CONTACT
    member.save()

    assert alerts.recipients(alerted_server) == [CONTACT]
