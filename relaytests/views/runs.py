"""A run's report: the page, its live part, and Re-test."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_POST

from relaytests import access
from relaytests.compare import compare_reports
from relaytests.guidance import guidance_for_report
from relaytests.models import TestRun
from relaytests.views.servers import start_run

# How often the page refreshes itself while a run works, when JavaScript is off.
NOSCRIPT_REFRESH_SECONDS = 10

# Under the verdict: what the canary proved. Accepting is not yet relaying until the wait is over.
DELIVERY_EXPLANATIONS = {
    "open_relay": "Relayed and delivered: a test message sent through this server came out the other side "
    "and reached the portal's canary. That is proof, not suspicion.",
    "accepts_relay": "Accepted but not delivered: the server took mail for an outside recipient, but no test "
    "message from it reached the canary (canary delivery off, or the server queued, discarded or bounced it "
    "later). A queued message may still arrive: the verdict then turns to open relay, marked late.",
}


@login_required
def run(request, pk: int):
    context = _run_context(access.get_run_for_user(request.user, pk), request.user)
    context["permalink"] = _permalink(request, context["run"])
    context["noscript_refresh"] = NOSCRIPT_REFRESH_SECONDS
    return render(request, "relaytests/run.html", context)


def _permalink(request, run: TestRun) -> str:
    """SITE_URL when set, else the address this page was reached at (as the run's test messages)."""
    return run.permalink if settings.SITE_URL else request.build_absolute_uri(run.get_absolute_url())


@login_required
def run_live(request, pk: int):
    """The part of the run page that changes while it works; the page's script swaps it in."""
    context = _run_context(access.get_run_for_user(request.user, pk), request.user)
    return render(request, "relaytests/includes/run_body.html", context)


@login_required
@require_POST
def retest(request, pk: int):
    run = access.get_run_for_user(request.user, pk)
    return start_run(request, run.server, TestRun.Trigger.RETEST)


def _run_context(run: TestRun, user) -> dict:
    report = run.report or {}
    previous = run.previous_run() if run.verdict else None
    return {
        "run": run,
        "server": run.server,
        "report": report,
        "probe": report.get("probe", {}),
        "previous": previous,
        "comparison": compare_reports(previous.report, report) if previous else None,
        "guidances": [] if run.is_active else guidance_for_report(report, server=run.server),
        "mail_hosts": _mail_hosts(report, user),
        **_delivery_context(run),
    }


def _mail_hosts(report: dict, user) -> dict | None:
    """The mail domain's MX hosts, each with the registered servers (that this user may see) behind it."""
    mx = next((c for c in report.get("checks", []) if c["id"] == "mx" and c.get("data", {}).get("hosts")), None)
    if mx is None:
        return None
    servers = list(access.servers_for(user))
    hosts = [{**host, "servers": [s for s in servers if _serves(s, host)]} for host in mx["data"]["hosts"]]
    return {"domain": mx["data"]["domain"], "hosts": hosts}


def _serves(server, mail_host: dict) -> bool:
    return server.target == mail_host["name"] or bool(set(server.addresses) & set(mail_host["addresses"]))


def _delivery_context(run: TestRun) -> dict:
    """What the canary proved, and while the run waits for test messages, until when."""
    if run.status != TestRun.Status.AWAITING_DELIVERY:
        return {"delivery_explanation": DELIVERY_EXPLANATIONS.get(run.verdict, ""), "waiting_until": None}
    # Still waiting, only a delivery is settled: "not delivered" is not known yet.
    proven = DELIVERY_EXPLANATIONS["open_relay"] if run.verdict == "open_relay" else ""
    wait = timedelta(seconds=settings.RELAYTEST_CANARY_WAIT)
    return {"delivery_explanation": proven, "waiting_until": run.finished_at + wait if run.finished_at else None}
