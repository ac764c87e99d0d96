"""Where a name belongs, by the public suffix list (shipped in publicsuffixlist: no download)."""

from __future__ import annotations

import pytest

from publicsuffixlist import PublicSuffixList

from relaytests.probe.names import _public_suffixes, guessed_mail_domain, organisational_domain


def test_the_list_holds_the_rules_the_library_builds_itself_unicode_and_punycode():
    assert _public_suffixes()._publicsuffix == PublicSuffixList()._publicsuffix


@pytest.mark.parametrize(
    ("name", "organisational"),
    [
        ("mx.dept.example.edu", "example.edu"),
        ("mx.dept.example.ac.uk", "example.ac.uk"),
        ("Example.AC.UK.", "example.ac.uk"),
        ("ac.uk", None),
        ("mx.example.xn--55qx5d.cn", "example.xn--55qx5d.cn"),  # 公司.cn, a suffix written in Unicode
        ("mx.example.\u516c\u53f8.cn", "example.\u516c\u53f8.cn"),
    ],
)
def test_the_organisational_domain_is_the_registered_one_under_the_public_suffix(name, organisational):
    assert organisational_domain(name) == organisational


@pytest.mark.parametrize(
    ("hostname", "domain"),
    [
        ("mx.dept.example.edu", "dept.example.edu"),
        ("mail.example.edu", "example.edu"),
        ("mx.example.ac.uk", "example.ac.uk"),
        ("example.ac.uk", "example.ac.uk"),  # not "ac.uk", a public suffix
        ("example.edu", "example.edu"),
        ("MX.Dept.Example.EDU.", "dept.example.edu"),
    ],
)
def test_the_mail_domain_guessed_from_a_host_name_never_climbs_above_its_registered_domain(hostname, domain):
    assert guessed_mail_domain(hostname) == domain
