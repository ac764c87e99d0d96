"""A run's report: the page, its live parts (a small status and the report's body), and Re-test."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET, require_POST

from relaytests import access
from relaytests.compare import compare_reports
from relaytests.guidance import guidance_for_report
from relaytests.models import TestRun
from relaytests.probe.hygiene import vantage_warning
from relaytests.probe.report import Check, ProbeInfo, Report
from relaytests.probe.vocabulary import Verdict
from relaytests.vantages import View, inside_relays, views_of
from relaytests.views.servers import start_run

# How often the page refreshes itself while a run works, when JavaScript is off.
NOSCRIPT_REFRESH_SECONDS = 10

# Under the verdict while the canary wait lasts: accepting is not yet relaying until the wait is over.
NOT_PROVEN_YET = (
    "Not proven yet: the server took mail for an outside recipient, and the portal is waiting for the test "
    "messages. Treat it as an open relay until a re-test says secure."
)


@login_required
def run(request, pk: int):
    context = _run_context(access.get_run_for_user(request.user, pk), request.user)
    context["permalink"] = _permalink(request, context["run"])
    context["noscript_refresh"] = NOSCRIPT_REFRESH_SECONDS
    context["poll_ms"] = settings.PORTAL_LIVE_POLL_MS
    return render(request, "relaytests/run.html", context)


def _permalink(request, run: TestRun) -> str:
    """SITE_URL when set, else the address this page was reached at (as the run's test messages)."""
    return run.permalink if settings.SITE_URL else request.build_absolute_uri(run.get_absolute_url())


@login_required
def run_live(request, pk: int):
    """The report's body; the page's script loads it once each time the run's state changes."""
    context = _run_context(access.get_run_for_user(request.user, pk), request.user)
    return render(request, "relaytests/includes/run_body.html", context)


@login_required
@require_GET
def run_status(request, pk: int):
    """A few facts the page polls while the run is live; 304 Not Modified while none of them changed."""
    state = live_state(access.get_run_for_user(request.user, pk))
    etag = f'"{hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:32]}"'
    response = get_conditional_response(request, etag=etag) or JsonResponse(state)
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response


@login_required
@require_POST
def retest(request, pk: int):
    run = access.get_run_for_user(request.user, pk)
    return start_run(request, run.server, TestRun.Trigger.RETEST)


def live_state(run: TestRun) -> dict:
    """What the status line says; `version` changes when the report's body must be loaded again."""
    waiting_until = _waiting_until(run)
    views = views_of(run)
    return {
        "state": run.status,
        "live": _live(views),
        "version": _version(views),
        "status": run.get_status_display(),
        "hosts": len(run.parsed_report.hosts),
        "verdict": run.verdict,
        "waiting_until": waiting_until.isoformat() if waiting_until else None,
    }


def _live(views: list[View]) -> bool:
    """The page updates itself until the run and every part of it are over."""
    return any(view.run.is_live for view in views)


def _version(views: list[View]) -> str:
    """Changes whenever the run or a part of it moves on: the page then loads the body again."""
    return "|".join(f"{view.run.status}:{view.run.verdict}" for view in views)


def _run_context(run: TestRun, user) -> dict:
    report = run.parsed_report
    # A part's earlier runs are the run's, seen from elsewhere: nothing to compare it with.
    previous = run.previous_run() if run.verdict and not run.part_of_id else None
    waiting_until = _waiting_until(run)
    views = views_of(run)
    return {
        "run": run,
        "views": views if len(views) > 1 else [],
        "inside_relays": inside_relays(views),
        "live": _live(views),
        "views_on_the_way": [view for view in views[1:] if view.run.is_live],
        "version": _version(views),
        "server": run.server,
        "report": report,
        "probe": report.probe,
        "previous": previous,
        "comparison": compare_reports(previous.parsed_report, report) if previous else None,
        "guidances": [] if run.is_active else guidance_for_report(report, server=run.server),
        "mail_hosts": _mail_hosts(report, user),
        "checks": _checks(report),
        "waiting_until": waiting_until,
        "minutes_left": _minutes_left(waiting_until) if waiting_until else None,
        "verdict_sentence": _verdict_sentence(run),
        "vantage_warning": _vantage_warning(report.probe),
    }


def _vantage_warning(probe: ProbeInfo) -> str:
    """Above the report, in the engine's words: the probe saw the server from inside the campus."""
    return vantage_warning(probe.source_address).detail if probe.inside_internal_networks else ""


@dataclass(frozen=True)
class CheckRow:
    where: str  # the target, or the host the check is about
    check: Check


def _checks(report: Report) -> list[CheckRow]:
    """Every check of the report in one table: the target's own (DNS of the domain), then each host's."""
    rows = [CheckRow(report.target, check) for check in report.checks]
    several_ports = len({host.port for host in report.hosts}) > 1
    for host in report.hosts:
        where = host.name or host.address
        where = f"{where} port {host.port}" if several_ports else where
        rows += [CheckRow(where, check) for check in host.checks]
    return rows


def _mail_hosts(report: Report, user) -> dict | None:
    """The mail domain's MX hosts, each with the registered servers (that this user may see) behind it."""
    mx = next((c for c in report.checks if c.id == "mx" and c.data.get("hosts")), None)
    if mx is None:
        return None
    servers = list(access.servers_for(user))
    hosts = [{**host, "servers": [s for s in servers if _serves(s, host)]} for host in mx.data["hosts"]]
    return {"domain": mx.data["domain"], "hosts": hosts}


def _serves(server, mail_host: dict) -> bool:
    return server.target == mail_host["name"] or bool(set(server.addresses) & set(mail_host["addresses"]))


def _waiting_until(run: TestRun):
    """While the run waits for test messages: until when."""
    if run.status != TestRun.Status.AWAITING_DELIVERY or not run.finished_at:
        return None
    return run.finished_at + timedelta(seconds=settings.RELAYTEST_CANARY_WAIT)


def _minutes_left(until: datetime) -> int:
    """Whole minutes, rounded up: "1 min left" until the very end."""
    return max(0, math.ceil((until - timezone.now()).total_seconds() / 60))


def _verdict_sentence(run: TestRun) -> str:
    """The one sentence under the verdict (its meaning); while waiting, only a delivery is settled."""
    if run.status == TestRun.Status.AWAITING_DELIVERY and run.verdict == Verdict.ACCEPTS_RELAY:
        return NOT_PROVEN_YET
    return Verdict(run.verdict).meaning if run.verdict else ""
