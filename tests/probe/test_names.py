"""Where a name belongs, by the public suffix list (shipped in publicsuffixlist: no download)."""

from __future__ import annotations

import pytest

from relaytests.probe.names import guessed_mail_domain, organisational_domain


@pytest.mark.parametrize(
    ("name", "organisational"),
    [
        ("mx.dept.example.edu", "example.edu"),
        ("mx.dept.example.ac.uk", "example.ac.uk"),
        ("Example.AC.UK.", "example.ac.uk"),
        ("ac.uk", None),
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
