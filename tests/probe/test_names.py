"""Where a name belongs, by the public suffix list (shipped in publicsuffixlist: no download)."""

from __future__ import annotations

import pytest
from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

from relaytests.probe.names import guessed_mail_domain, organisational_domain


def test_a_name_in_punycode_finds_the_rules_written_in_unicode_as_the_librarys_own_spelling_does():
    with_punycode_rules = PublicSuffixList()  # the library's default: every rule in punycode too
    with open(PSLFILE, encoding="utf-8") as file:
        unicode_rules = [line.split()[0] for line in file if not line.isascii() and not line.startswith("//")]
    assert len(unicode_rules) > 100
    for rule in unicode_rules:
        name = "mx.example." + encode_idn(rule.lstrip("!*."))
        assert organisational_domain(name) == with_punycode_rules.privatesuffix(name), name


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
