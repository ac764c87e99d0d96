"""Alerts: a mail when a run makes a server's state worse, and again when it is fixed.

What an alert is about are a server's *conditions*, each with a level: relaying (`accepts_relay`, then
`open_relay`), a listing on each blocklist, a certificate that expires within CERTIFICATE_WARNING or has
expired, and INCONCLUSIVE_IN_A_ROW inconclusive runs in a row. `MailServer.alert_state` holds the
conditions the last alert told about; when a run becomes final (done, or upgraded by a late delivery)
and is the server's latest, the conditions are read again and an Alert is written only where they
differ, in the same transaction: one mail per change, none for a run that changes nothing.

What a run cannot tell about stays as it was (`unknowable`): an inconclusive run proves nothing about
relaying, a run that saw no certificate nothing about its expiry, and a blocklist that was not or could
not be asked nothing about a listing, so a timeout is never reported as a fix.
The mail goes out from a task once the transaction commits (`tasks.send_alert`, retried until the
mail server takes it); an alert whose task could not be queued is queued again by the reaper.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from relaytests.guidance import Step, guidance_for_report
from relaytests.models import Alert, MailServer, TestRun, Verdict
from relaytests.probe.report import Check, Report

log = logging.getLogger(__name__)

CERTIFICATE_WARNING = timedelta(days=14)
INCONCLUSIVE_IN_A_ROW = 3
RELAY_VERDICTS = (Verdict.OPEN_RELAY, Verdict.ACCEPTS_RELAY)
# How bad each level is: a change to a higher level is worse news, to a lower one (or none) better.
LEVELS = {"accepts_relay": 1, "open_relay": 2, "listed": 1, "expiring": 1, "expired": 2, "inconclusive": 1}
# The order the changes are told in: the most urgent first.
CONDITION_ORDER = ["relay", "blocklist", "certificate", "inconclusive"]

# What each change means, by condition and its level now ("" = fixed): the subject's words, then the rest.
NEWS = {
    ("relay", "open_relay"): (
        "is an open relay",
        ": a test message sent through it to an outside address arrived",
    ),
    ("relay", "accepts_relay"): (
        "accepts relaying",
        ": it took mail for outside addresses; no test message has arrived yet to prove it",
    ),
    ("relay", ""): ("no longer relays", ": every relay attempt was refused"),
    ("blocklist", "listed"): ("is on the blocklist {name}", ""),
    ("blocklist", ""): ("is off the blocklist {name}", ""),
    ("certificate", "expiring"): (
        "has a certificate about to expire",
        ": its TLS certificate expires on {expires}",
    ),
    ("certificate", "expired"): ("has an expired certificate", ": its TLS certificate expired on {expires}"),
    ("certificate", ""): ("has a valid certificate again", ", for more than 14 days"),
    ("inconclusive", "inconclusive"): ("gives no clear answer", " in three tests in a row"),
    ("inconclusive", ""): ("gives a clear answer again", ""),
}
RENEW_CERTIFICATE = (
    "Renew the TLS certificate of {server} (it expires on {expires}), install it in the mail server and "
    "re-test."
)


def note(run: TestRun) -> Alert | None:
    """In the transaction that made `run` final: the alert the change it makes calls for, if any, sent
    once that transaction commits. None when the run is not done or not the server's latest (a newer
    run tells how the server stands), or when nothing changed."""
    if run.status != TestRun.Status.DONE:
        return None
    server = MailServer.objects.select_for_update().get(pk=run.server_id)
    if server.latest_run_id != run.pk:
        return None
    now = conditions(server, run)
    changed = changes(server.alert_state, now)
    if not changed:
        return None
    server.alert_state = now
    server.save(update_fields=["alert_state"])
    alert = Alert.objects.create(server=server, run=run, changes=changed)
    transaction.on_commit(lambda: queue(alert))
    return alert


def queue(alert: Alert) -> bool:
    """Hand the alert to the task that sends it; False when the broker cannot be reached (the reaper
    queues it again, `unqueued`)."""
    from relaytests.tasks import PUBLISH_ERRORS, send_alert  # the tasks import this module

    try:
        send_alert.apply_async((alert.pk,))
    except PUBLISH_ERRORS:
        log.warning("broker unreachable: alert %s is queued by the reaper instead", alert.pk, exc_info=True)
        return False
    Alert.objects.filter(pk=alert.pk).update(queued=True)
    return True


def unqueued(older_than: float) -> list[Alert]:
    """Alerts whose task never reached the broker, written over `older_than` seconds ago (a younger one
    may be in the hands of its transaction's commit hook still)."""
    written_before = timezone.now() - timedelta(seconds=older_than)
    return list(Alert.objects.filter(queued=False, sent_at=None, created_at__lt=written_before))


def conditions(server: MailServer, run: TestRun) -> dict[str, dict]:
    """What is wrong with the server after `run`, its latest: {condition: {"level", "since"}}."""
    before = server.alert_state
    statuses = blocklist_statuses(run.parsed_report)
    levels = {f"blocklist:{zone}": "listed" for zone, status in statuses.items() if status == "fail"}
    if run.verdict in RELAY_VERDICTS:
        levels["relay"] = run.verdict
    certificate = certificate_level(server.certificate_expires_at, timezone.now())
    if certificate:
        levels["certificate"] = certificate
    streak = inconclusive_streak(server)
    if streak:
        levels["inconclusive"] = "inconclusive"
    unknown = unknowable(run, statuses, server)
    levels.update(
        {key: state["level"] for key, state in before.items() if key not in levels and unknown(key)}
    )
    started = {"inconclusive": streak} if streak else {}
    return {
        key: {"level": level, "since": _since(before.get(key), level, started.get(key, run.created_at))}
        for key, level in levels.items()
    }


def unknowable(run: TestRun, statuses: dict[str, str], server: MailServer):
    """Whether the run could not tell about a condition, which then stays as it was: an inconclusive
    run about relaying, a run that saw no certificate about its expiry, a blocklist not asked or that
    could not be asked about a listing."""

    def unknown(key: str) -> bool:
        kind, _, zone = key.partition(":")
        return {
            "relay": run.verdict == Verdict.INCONCLUSIVE,
            "certificate": server.certificate_expires_at is None,
            "blocklist": statuses.get(zone, "error") == "error",
        }.get(kind, False)

    return unknown


def _since(before: dict | None, level: str, started: datetime) -> str:
    """When the condition reached its level: kept while it stays there."""
    return before["since"] if before and before["level"] == level else started.isoformat()


def changes(before: dict[str, dict], now: dict[str, dict]) -> list[dict]:
    """The conditions whose level moved, the worse news first."""
    moved = []
    for key in sorted(before.keys() | now.keys()):
        was, level = before.get(key, {}).get("level", ""), now.get(key, {}).get("level", "")
        if was != level:
            since = (now.get(key) or before[key])["since"]
            worse = LEVELS.get(level, 0) > LEVELS.get(was, 0)
            moved.append({"condition": key, "was": was, "now": level, "since": since, "worse": worse})
    return sorted(
        moved, key=lambda c: (not c["worse"], CONDITION_ORDER.index(c["condition"].partition(":")[0]))
    )


def blocklist_checks(report: Report) -> list[Check]:
    """The report's blocklist checks, each naming the zone it asked."""
    return [c for host in report.hosts for c in host.checks if c.id == "dnsbl" and (c.data or {}).get("zone")]


def blocklist_statuses(report: Report) -> dict[str, str]:
    """Each blocklist zone the report asked, with its check's status (a listing fails)."""
    return {check.data["zone"]: check.status for check in blocklist_checks(report)}


def certificate_level(expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None or expires_at > now + CERTIFICATE_WARNING:
        return ""
    return "expired" if expires_at <= now else "expiring"


def inconclusive_streak(server: MailServer) -> datetime | None:
    """When the latest INCONCLUSIVE_IN_A_ROW runs with a verdict began, if all were inconclusive."""
    runs = TestRun.objects.with_verdict().filter(server=server).values_list("verdict", "created_at")
    latest = list(runs[:INCONCLUSIVE_IN_A_ROW])
    if len(latest) < INCONCLUSIVE_IN_A_ROW or any(verdict != Verdict.INCONCLUSIVE for verdict, _ in latest):
        return None
    return latest[-1][1]


# ---- the mail ----


def send(alert_id: int) -> bool:
    """Send the alert's mail unless it went already; whether it was sent now. SMTP errors propagate, for
    the task to retry; the alert is marked sent only once the mail server took the message."""
    alert = Alert.objects.select_related("server__department", "run").filter(pk=alert_id).first()
    if alert is None or alert.sent_at:
        return False
    message(alert).send()
    Alert.objects.filter(pk=alert.pk).update(sent_at=timezone.now())
    return True


def message(alert: Alert) -> EmailMultiAlternatives:
    context = mail_context(alert)
    text = render_to_string("relaytests/mail/alert.txt", context)
    html = render_to_string("relaytests/mail/alert.html", context)
    mail = EmailMultiAlternatives(
        context["subject"], text, settings.DEFAULT_FROM_EMAIL, recipients(alert.server)
    )
    mail.attach_alternative(html, "text/html")
    return mail


def recipients(server: MailServer) -> list[str]:
    """The department's contact address, its members who want alerts, and central IT."""
    members = get_user_model().objects.filter(
        memberships__department=server.department_id, memberships__alerts=True, is_active=True
    )
    addresses = [server.department.contact_email, *members.values_list("email", flat=True)]
    return list(dict.fromkeys(a for a in [*addresses, settings.PORTAL_ALERT_EMAIL] if a))


def mail_context(alert: Alert) -> dict:
    server, run = alert.server, alert.run
    told = [told_change(change, server, run) for change in alert.changes]
    worse = [change for change in told if change["worse"]]
    headline = worse[0]["headline"] if worse else "; ".join(change["headline"] for change in told)
    return {
        "subject": f"[{settings.PORTAL_ORG_NAME} Relay Test Portal] {server} {headline}",
        "server": server,
        "run": run,
        "changes": told,
        "permalink": run.permalink,
        "org_name": settings.PORTAL_ORG_NAME,
    }


def told_change(change: dict, server: MailServer, run: TestRun) -> dict:
    """A change in words: what it means, since when, and the first thing to do about it."""
    kind, _, name = change["condition"].partition(":")
    expires = f"{server.certificate_expires_at:%Y-%m-%d}" if server.certificate_expires_at else "?"
    facts = {"name": name, "expires": expires, "server": server}
    headline, detail = (text.format(**facts) for text in NEWS[(kind, change["now"])])
    return {
        **change,
        "headline": headline,
        "news": headline + detail,
        "since": datetime.fromisoformat(change["since"]),
        "first_step": first_step(kind, name, run, server, facts) if change["worse"] else "",
    }


def first_step(kind: str, zone: str, run: TestRun, server: MailServer, facts: dict) -> Step:
    """The first step of the report's What to do for this kind of trouble, with the change to make
    where the report gives one."""
    if kind == "certificate":
        return Step("", RENEW_CERTIFICATE.format(**facts))
    if kind == "blocklist":
        details = [
            check.detail for check in blocklist_checks(run.parsed_report) if check.data["zone"] == zone
        ]
        return Step("", details[0] if details else "")
    for guidance in guidance_for_report(run.parsed_report, server=server):
        if kind == "relay" and guidance.needs_fixing and guidance.steps:
            return guidance.steps[0]
        if kind == "inconclusive" and guidance.next_steps:
            return Step("", guidance.next_steps[0])
    return Step("", "")
