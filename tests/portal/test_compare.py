""" "Since last run": compare_reports is a pure function of two reports (no database)."""

from relaytests.compare import Change, Comparison, compare_reports
from relaytests.probe.report import Report
from tests.portal.factories import check, host, report, vector


def compare(before: dict, after: dict) -> Comparison:
    """Two stored reports compared, as the run page reads them (`TestRun.parsed_report`)."""
    return compare_reports(Report.from_dict(before), Report.from_dict(after))


def test_a_fixed_vector_is_listed_as_now_rejected_and_an_open_one_as_still_accepted():
    before = report(
        "open_relay", hosts=[host(vectors=[vector("plain", "accepted"), vector("percent-host", "accepted")])]
    )
    after = report(
        "accepts_relay",
        hosts=[host(vectors=[vector("plain", "accepted"), vector("percent-host", "rejected")])],
    )

    comparison = compare(before, after)

    assert [c.text for c in comparison.changed] == ["percent-host: now rejected (was accepted)"]
    assert [c.text for c in comparison.still_problems] == ["plain: still accepted"]
    assert (comparison.verdict_was, comparison.verdict_now, comparison.verdict_changed) == (
        "open_relay",
        "accepts_relay",
        True,
    )


def test_unchanged_refusals_are_only_counted():
    before = report(hosts=[host(vectors=[vector("plain", "rejected"), vector("null-sender", "rejected")])])
    after = report(hosts=[host(vectors=[vector("plain", "rejected"), vector("null-sender", "rejected")])])

    comparison = compare(before, after)

    assert (comparison.changed, comparison.still_problems, comparison.unchanged_count) == ([], [], 2)
    assert not comparison.verdict_changed


def test_a_delivered_canary_counts_as_relayed_not_just_accepted():
    before = report(hosts=[host(vectors=[vector("plain", "accepted", delivered=False)])])
    after = report(hosts=[host(vectors=[vector("plain", "accepted", delivered=True)])])

    assert [c.text for c in compare(before, after).changed] == ["plain: now relayed (was accepted)"]


def test_vectors_new_in_this_run_and_those_no_longer_tested_are_named():
    before = report(hosts=[host(vectors=[vector("bang-path", "rejected")])])
    after = report(hosts=[host(vectors=[vector("plain", "rejected")])])

    changed = compare(before, after).changed

    assert [c.text for c in changed] == [
        "plain: new, rejected",
        "bang-path: not tested this time (was rejected)",
    ]


def test_hosts_are_matched_by_address_and_port_and_changes_name_their_host():
    before = report(
        hosts=[
            host("192.0.2.1", vectors=[vector("plain", "accepted")]),
            host("2001:db8::1", vectors=[vector("plain", "rejected")]),
        ]
    )
    after = report(
        hosts=[
            host("2001:db8::1", vectors=[vector("plain", "accepted")]),
            host("192.0.2.1", vectors=[vector("plain", "rejected")]),
        ]
    )

    changed = compare(before, after).changed

    assert changed == [
        Change("plain", "accepted", "rejected", "192.0.2.1:25"),
        Change("plain", "rejected", "accepted", "2001:db8::1:25"),
    ]


def test_checks_of_the_target_and_of_hosts_are_compared_and_failing_ones_stay_listed():
    before = report(
        checks=[check("spf", "warn")], hosts=[host(checks=[check("dnsbl-zen", "fail"), check("ptr", "pass")])]
    )
    after = report(
        checks=[check("spf", "warn")], hosts=[host(checks=[check("dnsbl-zen", "pass"), check("ptr", "pass")])]
    )

    comparison = compare(before, after)

    assert [(c.host, c.text) for c in comparison.changed] == [
        ("192.0.2.25:25", "dnsbl-zen: now pass (was fail)")
    ]
    assert [(c.host, c.text) for c in comparison.still_problems] == [("", "spf: still warn")]
    assert comparison.unchanged_count == 1


def test_a_listing_on_one_zone_between_two_runs_is_a_change():
    def blocklists(spamcop: str) -> dict:
        checks = [
            {**check("dnsbl", "pass"), "data": {"zone": "zen.spamhaus.org"}},
            {**check("dnsbl", spamcop), "data": {"zone": "bl.spamcop.net"}},
        ]
        return report(hosts=[host(checks=checks)])

    comparison = compare(blocklists("pass"), blocklists("fail"))

    assert [change.text for change in comparison.changed] == ["dnsbl bl.spamcop.net: now fail (was pass)"]
    assert comparison.unchanged_count == 1
