"""Reading a stored report back (`Report.from_dict`): what the engine wrote comes back the same, and
what it did not write (a progress snapshot, a dead run's partial report, a newer writer's keys) still
reads, never raises."""

from __future__ import annotations

from relaytests.probe.report import (
    Check,
    HostReport,
    ProbeInfo,
    Report,
    Software,
    TranscriptLine,
    VectorResult,
)


def a_report() -> Report:
    vector = VectorResult("plain", "relaytest.invalid", "<p@x.net>", "<r@x.net>", "rejected", "relay_denied")
    host = HostReport(
        "192.0.2.25",
        25,
        name="mx.example.edu",
        verdict="secure",
        software=Software("postfix", "3.7"),
        vectors=[vector],
        checks=[Check("dnsbl", "pass", "", {"zone": "zen.spamhaus.org"})],
        transcript=[TranscriptLine("S", "220 mx.example.edu ESMTP", 0.1)],
    )
    return Report("mx.example.edu", "2026-12-02T10:00:00+00:00", verdict="secure", hosts=[host])


def test_what_the_engine_wrote_reads_back_the_same():
    report = a_report()
    assert Report.from_dict(report.to_dict()) == report


def test_keys_a_newer_writer_added_are_ignored_at_every_level():
    stored = a_report().to_dict()
    stored["future"] = 1
    stored["probe"]["future"] = 1
    stored["hosts"][0].update(future=1, state="done")  # `state`: the progress snapshot's own key
    stored["hosts"][0]["software"]["future"] = 1
    stored["hosts"][0]["vectors"][0]["future"] = 1
    stored["hosts"][0]["checks"][0]["future"] = 1
    stored["hosts"][0]["transcript"][0]["future"] = 1
    assert Report.from_dict(stored) == a_report()


def test_a_partial_report_reads_with_blanks_for_what_it_lacks():
    partial = {"verdict": "inconclusive", "hosts": [{"address": "127.0.0.1", "vectors": [{"id": "plain"}]}]}
    report = Report.from_dict(partial)
    (host,) = report.hosts
    assert (report.target, report.probe, host.port, host.software.family) == ("", ProbeInfo(), 25, "unknown")
    assert (host.vectors[0].id, host.vectors[0].outcome) == ("plain", "")


def test_nothing_stored_yet_reads_as_an_empty_report():
    report = Report.from_dict({})
    assert (report.hosts, report.checks, report.target) == ([], [], "")


def test_a_blocklist_check_is_known_by_its_zone():
    assert Check("dnsbl", "fail", "", {"zone": "zen.spamhaus.org"}).key == "dnsbl zen.spamhaus.org"
    assert Check("ptr", "pass", "").key == "ptr"
