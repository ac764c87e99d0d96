"""Evidence retention: old runs keep their summary, lose their transcripts; some runs keep everything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.celery import app
from relaytests.models import TestRun, VerdictChange
from relaytests.tasks import trim_old_evidence
from tests.portal import factories
from tests.portal.conftest import client_for
from tests.portal.factories import check, host, report, vector

pytestmark = pytest.mark.django_db

TRANSCRIPT = [{"dir": "S", "line": "220 mail.physics.example.edu ESMTP " + "x" * 300}] * 40
LONG_REPLY = "554 5.7.1 Relay access denied " + "y" * 1000


def full_report(verdict: str = "secure") -> dict:
    refused = {
        **vector("plain", "rejected"),
        "reply": LONG_REPLY,
        "delivery": {"peer_address": "192.0.2.25", "received_chain": ["from a by b"] * 20, "late": False},
    }
    checks = [check("starttls", "pass"), check("dnsbl", "fail")]
    return report(
        verdict,
        hosts=[host(vectors=[refused], checks=checks, transcript=TRANSCRIPT)],
        checks=[check("mx", "pass")],
    )


def finished_days_ago(server, days: int, verdict: str = "secure") -> TestRun:
    run = factories.make_run(server, verdict=verdict, report=full_report(verdict))
    TestRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))
    return run


def test_a_run_older_than_the_evidence_days_keeps_its_summary_and_loses_its_bulk(server, member, settings):
    settings.RELAYTEST_EVIDENCE_DAYS = 180
    old = finished_days_ago(server, 200)
    finished_days_ago(server, 1)  # the latest

    assert trim_old_evidence.apply().get() == 1

    old.refresh_from_db()
    kept, [trimmed_host] = old.report, old.report["hosts"]
    [refused] = trimmed_host["vectors"]
    assert old.evidence_trimmed and kept["evidence_trimmed"] is True
    assert (kept["verdict"], trimmed_host["verdict"], refused["outcome"], refused["reason"]) == (
        "secure",
        "secure",
        "rejected",
        "relay_denied",
    )
    assert [c["id"] for c in trimmed_host["checks"]] == ["starttls", "dnsbl"] and kept["checks"][0][
        "id"
    ] == "mx"
    assert trimmed_host["transcript"] == [] and "received_chain" not in refused["delivery"]
    assert refused["reply"] == LONG_REPLY[:200]
    assert len(str(kept)) < len(str(full_report())) / 5
    assert client_for(member).get(old.get_absolute_url()).status_code == 200  # the page still reads it


def test_the_latest_run_a_verdict_change_and_recent_runs_keep_their_evidence(server, settings):
    settings.RELAYTEST_EVIDENCE_DAYS = 180
    changed = finished_days_ago(server, 300, verdict="open_relay")
    VerdictChange.objects.create(server=server, run=changed, old_verdict="secure", new_verdict="open_relay")
    recent = finished_days_ago(server, 10)
    latest = finished_days_ago(server, 400)  # the newest started, whenever it finished
    waiting = factories.make_run(
        factories.make_server(server.department, target="mx2.example.edu"),
        status=TestRun.Status.AWAITING_DELIVERY,
        verdict="secure",
        report=full_report(),
    )
    TestRun.objects.filter(pk=waiting.pk).update(finished_at=timezone.now() - timedelta(days=400))

    assert trim_old_evidence.apply().get() == 0

    for run in (changed, recent, latest, waiting):
        run.refresh_from_db()
        assert not run.evidence_trimmed and run.report["hosts"][0]["transcript"] == TRANSCRIPT


def test_trimming_twice_changes_nothing_more(server, settings):
    settings.RELAYTEST_EVIDENCE_DAYS = 180
    old = finished_days_ago(server, 200)
    finished_days_ago(server, 1)
    trim_old_evidence.apply()
    old.refresh_from_db()
    once = old.report

    assert trim_old_evidence.apply().get() == 0
    old.refresh_from_db()
    assert old.report == once


def test_beat_sends_the_trimming_daily():
    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["relaytests.tasks.trim_old_evidence"] == 24 * 3600
