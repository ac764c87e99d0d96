"""The software-version check on real banners of old and current releases of each family."""

from __future__ import annotations

import pytest

from relaytests.probe.fingerprint import FAMILY_NAMES, identify
from relaytests.probe.outdated import CHECK_ID, outdated_check, table, version_key

# (banner as the server sends it, expected status, words the detail must contain)
BANNERS = [
    ("220 mx.dept.example.edu ESMTP Postfix 3.4.14", "warn", "no longer supported upstream"),
    ("220 mx.dept.example.edu ESMTP Postfix 3.11.1", "pass", "current release is 3.11"),
    (
        "220 mx.dept.example.edu ESMTP Sendmail 8.8.8/8.8.8; Tue, 3 Mar 1998 10:00:00 -0600",
        "fail",
        "relays mail for anyone by default",
    ),
    (
        "220 mx.dept.example.edu ESMTP Sendmail 8.12.11.20060308/8.12.11; Mon, 2 Jan 2006",
        "warn",
        "CVE-2023-51765",
    ),
    (
        "220 mx.dept.example.edu ESMTP Sendmail 8.18.2/8.18.2/Debian-1; Fri, 27 Nov 2026",
        "pass",
        "current release is 8.18.2",
    ),
    (
        "220 mx.dept.example.edu ESMTP Exim 4.96 Fri, 27 Nov 2026 10:00:00 +0000",
        "warn",
        "only its latest release",
    ),
    (
        "220 mx.dept.example.edu ESMTP Exim 4.99.3 Fri, 27 Nov 2026 10:00:00 +0000",
        "pass",
        "current release is 4.99.3",
    ),
    ("220 mx.dept.example.edu ESMTP OpenSMTPD 6.6.1", "warn", "CVE-2020-7247"),
    ("220 mx.dept.example.edu ESMTP OpenSMTPD 7.6.0", "pass", "OpenSMTPD 7.6.0"),
    (
        "220 exch.dept.example.edu Microsoft ESMTP MAIL Service ready at Fri, 27 Nov 2026 10:00:00 +0000",
        "info",
        "14 October 2025",
    ),
    (
        "220 iis.dept.example.edu Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at Fri, 27 Nov",
        "warn",
        "Windows Server 2003",
    ),
    (
        "220 iis.dept.example.edu Microsoft ESMTP MAIL Service, Version: 10.0.17763.1 ready at Fri, 27 Nov",
        "info",
        "deprecated",
    ),
    (
        "220 notes.dept.example.edu ESMTP Service (Lotus Domino Release 8.5.3) ready at Fri, 27 Nov 2026",
        "warn",
        "past end of support",
    ),
    (
        "220 notes.dept.example.edu ESMTP Service (HCL Domino Release 14.5) ready at Fri, 27 Nov 2026",
        "pass",
        "current release is 14.5",
    ),
    ("220 mail.dept.example.edu ESMTP qmail", "info", "rcpthosts"),
]


@pytest.mark.parametrize(("banner", "status", "words"), BANNERS, ids=[b[0][4:60] for b in BANNERS])
def test_each_family_old_and_current_banner(banner, status, words):
    software = identify(banner)
    check = outdated_check(software, banner)
    assert (check.id, check.status) == (CHECK_ID, status)
    assert words in check.detail
    assert check.data["seen"] == software.version
    assert check.data["current"] in check.detail


def test_a_version_found_says_what_was_seen_and_what_is_current():
    banner = "220 mx.dept.example.edu ESMTP Sendmail 8.8.8/8.8.8; Tue, 3 Mar 1998"
    check = outdated_check(identify(banner), banner)
    assert check.detail.startswith("The banner shows Sendmail 8.8.8, which relays mail for anyone by default")
    assert "The current release is 8.18.2." in check.detail
    assert "8.9.0" in check.data["source"]


def test_a_banner_without_a_version_says_it_hides_it_and_how_to_read_it():
    banner = "220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)"
    check = outdated_check(identify(banner), banner)
    assert check.status == "info"
    assert "The banner hides the version of Postfix" in check.detail
    assert "postconf -d mail_version" in check.detail
    assert check.data["seen"] is None


def test_unknown_software_cannot_be_checked():
    banner = "220 mx.dept.example.edu ESMTP ready"
    check = outdated_check(identify(banner), banner)
    assert (check.status, check.data["family"]) == ("info", "unknown")
    assert "cannot be checked" in check.detail


def test_a_hostile_banner_is_quoted_only_in_part():
    banner = "220 mx.dept.example.edu ESMTP Postfix " + "A" * 5000
    check = outdated_check(identify(banner), banner)
    assert "A" * 200 not in check.detail


def test_distribution_backports_are_mentioned_for_packaged_software_only():
    postfix, iis = (
        "220 mx ESMTP Postfix 3.4.14",
        "220 iis Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at",
    )
    assert "backport" in outdated_check(identify(postfix), postfix).detail
    assert "backport" not in outdated_check(identify(iis), iis).detail


@pytest.mark.parametrize(
    ("version", "key"),
    [("8.8.8", (8, 8, 8)), ("9.0.1FP10", (9, 0, 1)), ("6.0.3790.3959", (6, 0, 3790, 3959)), ("beta", None)],
)
def test_versions_compare_as_numbers(version, key):
    assert version_key(version) == key


def test_versions_compare_part_by_part():
    assert version_key("8.8.8") < version_key("8.9") < version_key("8.18.1")


def test_every_family_the_fingerprint_knows_has_a_row_with_sources():
    families = table()["family"]
    assert set(families) == set(FAMILY_NAMES) - {"unknown"}
    for name, family in families.items():
        assert family["current"] and family["current_source"] and family["version_hint"], name
        rows = family.get("release", [])
        for row in rows:
            assert row["status"] in ("warn", "fail") and row["source"] and version_key(row["below"]), row
        # the first matching row wins, so the rows must go from the oldest releases up
        bounds = [version_key(row["below"]) for row in rows]
        assert bounds == sorted(bounds), name
