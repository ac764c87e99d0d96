"""The verdicts are written once (probe/vocabulary.py): their values are the relaytest/1 strings, their
order is their severity, and the words, exit codes and the run's verdict all follow from them."""

from __future__ import annotations

import json

import pytest

from relaytests.probe.report import Check, HostReport, Report, worst_verdict
from relaytests.probe.vocabulary import EXIT_WARNINGS, Verdict


def test_the_values_are_the_strings_reports_store_worst_first():
    assert [verdict.value for verdict in Verdict] == ["open_relay", "accepts_relay", "inconclusive", "secure"]
    assert [verdict.severity for verdict in Verdict] == [3, 2, 1, 0]
    assert json.dumps(Report("mx", "t", verdict=Verdict.OPEN_RELAY).to_dict())  # a str in JSON
    assert json.loads(json.dumps({"verdict": Verdict.SECURE})) == {"verdict": "secure"}


@pytest.mark.parametrize(
    ("hosts", "worst"),
    [
        (["secure", "inconclusive"], Verdict.INCONCLUSIVE),
        (["secure", "open_relay", "accepts_relay"], Verdict.OPEN_RELAY),
        (["secure"], Verdict.SECURE),
        ([], Verdict.INCONCLUSIVE),  # no host at all tells nothing
    ],
)
def test_a_runs_verdict_is_its_worst_hosts(hosts, worst):
    assert worst_verdict(hosts) is worst


def test_every_verdict_has_a_label_a_summary_a_meaning_and_an_exit_code():
    for verdict in Verdict:
        assert verdict.label and verdict.summary and verdict.meaning
    assert {verdict: verdict.exit_code for verdict in Verdict} == {
        Verdict.OPEN_RELAY: 2,
        Verdict.ACCEPTS_RELAY: 2,
        Verdict.INCONCLUSIVE: 3,
        Verdict.SECURE: 0,
    }
    assert [verdict for verdict in Verdict if verdict.is_relay] == [Verdict.OPEN_RELAY, Verdict.ACCEPTS_RELAY]


@pytest.mark.parametrize(
    ("verdict", "status", "code"),
    [
        ("secure", "pass", 0),
        ("secure", "warn", EXIT_WARNINGS),
        ("open_relay", "warn", 2),
        ("inconclusive", "fail", 3),
    ],
)
def test_the_exit_code_is_the_verdicts_and_warnings_only_lower_a_secure_one(verdict, status, code):
    host = HostReport("192.0.2.25", 25, verdict=verdict, checks=[Check("ptr", status, "")])
    assert Report("mx", "t", verdict=verdict, hosts=[host]).exit_code() == code
