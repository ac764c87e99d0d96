"""Guidance per MTA: the detected family's section, the vectors that got through, the server's own names."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.test import override_settings

from relaytests.guidance import Guidance, greeting_name, guidance_for
from relaytests.probe.report import Report
from relaytests.probe.suite import SuiteConfig, run_suite
from relaytests.probe.targets import HostTarget
from tests.fakes import BEHAVIOURS, FakeSMTPServer, with_banner
from tests.fakes.smtp import HOSTNAME, LOCAL_DOMAIN
from tests.portal import factories
from tests.portal.conftest import client_for

pytestmark = pytest.mark.django_db

BANNERS = {
    "postfix": "220 mx.physics.example.edu ESMTP Postfix (Debian/GNU)",
    "sendmail": "220 mx.physics.example.edu ESMTP Sendmail 8.8.8/8.8.8; Tue, 3 Mar 1998 10:00:00 -0600",
    "exim": "220 mx.physics.example.edu ESMTP Exim 4.96 Fri, 27 Nov 2026 10:00:00 +0000",
    "opensmtpd": "220 mx.physics.example.edu ESMTP OpenSMTPD",
    "exchange": "220 mx.physics.example.edu Microsoft ESMTP MAIL Service ready at Fri, 27 Nov 2026 10:00:00",
    "iis": "220 mx.physics.example.edu Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at Fri",
    "domino": "220 mx.physics.example.edu ESMTP Service (Lotus Domino Release 8.5.3) ready at Fri",
    "qmail": "220 mx.physics.example.edu ESMTP qmail",
    "unknown": "220 mx.physics.example.edu ESMTP ready",
}
VERSIONS = {"sendmail": "8.8.8", "exim": "4.96", "iis": "6.0.3790.3959", "domino": "8.5.3"}

# (family, the vectors that got through, words only that family's section contains)
FAMILIES = [
    ("postfix", ["plain", "helo-localhost"], "smtpd_relay_restrictions = permit_mynetworks"),
    ("sendmail", ["percent-host", "spoof-domain"], "FEATURE(`loose_relay_check&#x27;)"),
    ("exim", ["plain"], "hostlist   relay_from_hosts"),
    ("opensmtpd", ["plain", "spoof-domain"], "match from src &lt;dept_hosts&gt; for any"),
    ("exchange", ["plain", "auth-failed"], "Ms-Exch-SMTP-Accept-Any-Recipient"),
    ("iis", ["plain"], "Only the list below"),
    ("domino", ["plain", "percent-domain"], "Inbound Relay Controls"),
    ("qmail", ["plain", "double-at-host"], "/var/qmail/control/rcpthosts"),
]
MARKERS = [words for _, _, words in FAMILIES]


def vector(vector_id: str, outcome: str, **fields) -> dict:
    """One vector result with the keys relaytest/1 requires (no `evidence`: older reports lack it)."""
    return {
        "id": vector_id,
        "helo": "relaytest.invalid",
        "mail_from": "<b-1@canary.example.net>",
        "rcpt_to": f"<r-{vector_id}@canary.example.net>",
        "outcome": outcome,
        "reason": "" if outcome == "accepted" else "relay_denied",
        "code": 250 if outcome == "accepted" else 554,
        "reply": "2.1.5 Ok" if outcome == "accepted" else "5.7.1 Relaying denied",
        "delivered": None,
        **fields,
    }


def report_for(family: str, accepted=(), *, name="mx.physics.example.edu", checks=()) -> dict:
    """A relaytest/1 report of one host of that family: `accepted` got through, the rest were refused."""
    refused = [
        v for v in ("plain", "null-sender", "spoof-domain", "percent-host", "bang") if v not in accepted
    ]
    vectors = [vector(v, "accepted", delivered=True) for v in accepted] + [
        vector(v, "rejected") for v in refused
    ]
    vectors.append(vector("control-inbound", "accepted"))
    verdict = "open_relay" if accepted else "secure"
    host = {
        "address": "192.0.2.25",
        "port": 25,
        "name": name,
        "verdict": verdict,
        "reason": "",
        "banner": BANNERS[family],
        "software": {"family": family, "version": VERSIONS.get(family)},
        "vectors": vectors,
        "checks": list(checks),
        "transcript": [],
    }
    return {
        "schema": "relaytest/1",
        "target": name,
        "started_at": "2026-11-27T10:00:00+00:00",
        "finished_at": "2026-11-27T10:01:00+00:00",
        "duration_s": 60.0,
        "verdict": verdict,
        "summary": "",
        "probe": {
            "source_address": "198.51.100.7",
            "helo": "relaytest.invalid",
            "inside_internal_networks": False,
            "canary_domain": "canary.example.net",
        },
        "hosts": [host],
        "checks": [],
    }


def guidance_of(report: dict, host_index: int, *, server=None) -> Guidance:
    """The guidance for a host of a stored report, as the run page reads it (`TestRun.parsed_report`)."""
    return guidance_for(Report.from_dict(report), host_index, server=server)


def render(report: dict, server=None) -> str:
    return render_to_string(
        "relaytests/guidance/panel.html", {"guidance": guidance_of(report, 0, server=server)}
    )


def named_vectors(html: str) -> set[str]:
    return {part.split('"', 1)[0] for part in html.split('id="why-')[1:]}


@pytest.mark.parametrize(("family", "accepted", "marker"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_family_gets_its_own_section_naming_exactly_the_vectors_that_got_through(
    family, accepted, marker
):
    html = render(report_for(family, accepted))
    assert marker in html
    assert [m for m in MARKERS if m in html] == [marker]
    assert named_vectors(html) == set(accepted)
    assert "How to tell which MTA you run" not in html
    assert "Verify: re-test here" in html


def test_each_named_vector_says_why_it_works_on_that_mta():
    guidance = guidance_of(report_for("sendmail", ["percent-host"]), 0)
    (percent,) = guidance.failing
    assert "loose_relay_check" in percent.why
    assert "mx.physics.example.edu" in percent.why
    assert percent.explanation == "Percent hack against the host name: user%outside@server."


def test_the_same_vector_is_explained_differently_per_mta():
    sendmail = guidance_of(report_for("sendmail", ["plain"]), 0).failing[0].why
    exim = guidance_of(report_for("exim", ["plain"]), 0).failing[0].why
    assert "promiscuous_relay" in sendmail and "relay_from_hosts" in exim
    assert sendmail != exim


def test_unknown_software_gets_the_generic_text_with_how_to_tell_the_mta():
    html = render(report_for("unknown", ["plain"]))
    assert "How to tell which MTA you run" in html
    assert "postconf -d mail_version" in html and "exim -bV" in html
    assert [m for m in MARKERS if m in html] == []
    assert named_vectors(html) == {"plain"}
    assert "Refuse relay unless the client is known" in html


def test_a_family_without_a_section_also_gets_the_generic_text():
    report = report_for("unknown", ["plain"])
    report["hosts"][0]["software"]["family"] = "haraka"
    guidance = guidance_of(report, 0)
    assert (guidance.generic, guidance.family) == (True, "unknown")


def test_the_server_names_and_the_hub_are_filled_into_the_snippets(department):
    server = factories.make_server(department, "mx.physics.example.edu", mail_domain="physics.example.edu")
    guidance = guidance_of(report_for("postfix", ["plain"]), 0, server=server)
    snippet = guidance.steps[0].snippet
    assert "myhostname = mx.physics.example.edu\nmydomain = physics.example.edu" in snippet
    assert "relayhost = [relay.example.edu]:587" in guidance.hub.snippet
    assert "{" not in snippet


def test_without_a_registered_domain_the_mail_domain_is_the_host_names_parent():
    guidance = guidance_of(report_for("exim", ["plain"], name="smtp.chem.example.edu"), 0)
    assert "domainlist local_domains    = @ : chem.example.edu" in guidance.steps[0].snippet


def test_a_host_named_like_its_registered_domain_keeps_its_name_rather_than_a_public_suffix():
    guidance = guidance_of(report_for("exim", ["plain"], name="chem.example.ac.uk"), 0)
    assert "domainlist local_domains    = @ : example.ac.uk" in guidance.steps[0].snippet
    guidance = guidance_of(report_for("exim", ["plain"], name="example.ac.uk"), 0)
    assert "domainlist local_domains    = @ : example.ac.uk" in guidance.steps[0].snippet


@override_settings(PORTAL_RELAY_HUB="relay.tc.umn.edu", PORTAL_ORG_NAME="University of Minnesota")
def test_the_hub_and_the_organisation_come_from_settings():
    html = render(report_for("sendmail", ["percent-host"]))
    assert "define(`SMART_HOST&#x27;, `[relay.tc.umn.edu]&#x27;)dnl" in html
    assert "University of Minnesota recommends handing all outgoing mail" in html
    assert "relay.example.edu" not in html


def test_the_outdated_release_is_flagged_in_the_guidance():
    html = render(report_for("sendmail", ["percent-host"]))
    assert 'class="check check-fail"' in html
    assert "The banner shows Sendmail 8.8.8, which relays mail for anyone by default" in html


def test_the_check_the_run_recorded_is_shown_rather_than_recomputed():
    recorded = {"id": "software-version", "status": "warn", "detail": "recorded at run time", "data": {}}
    guidance = guidance_of(report_for("sendmail", ["plain"], checks=[recorded]), 0)
    assert (guidance.outdated.status, guidance.outdated.detail) == ("warn", "recorded at run time")


def test_a_host_that_refused_everything_gets_no_fix_steps():
    html = render(report_for("postfix"))
    assert named_vectors(html) == set()
    assert "No relay test got through on this host." in html
    assert "Close third-party relay" not in html
    assert "Recommended: send through relay.example.edu" in html


def test_names_from_a_hostile_server_are_escaped():
    html = render(report_for("postfix", ["plain"], name="<script>x</script>.example.edu"))
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;.example.edu" in html


@override_settings(PORTAL_RELAY_HUB="relay.tc.umn.edu")
def test_the_run_page_shows_the_sendmail_guidance_for_a_percent_hack_relay(member, department):
    server = factories.make_server(department, "mx.physics.example.edu", mail_domain="physics.example.edu")
    run = factories.make_run(server, verdict="open_relay", report=report_for("sendmail", ["percent-host"]))
    html = client_for(member).get(run.get_absolute_url()).content.decode()
    assert "mx.physics.example.edu 192.0.2.25:25: Sendmail</h3>" in html
    assert named_vectors(html) == {"percent-host"}
    assert "relays mail for anyone by default" in html
    assert "Recommended: send through relay.tc.umn.edu" in html


def test_a_run_still_working_shows_no_guidance_yet(member, department):
    server = factories.make_server(department)
    run = factories.make_run(server, status="running", report=report_for("sendmail", ["percent-host"]))
    html = client_for(member).get(run.get_absolute_url()).content.decode()
    assert 'class="guidance"' not in html


def test_a_partial_report_of_a_dead_run_still_renders():
    report = {"schema": "relaytest/1", "verdict": "inconclusive", "hosts": [{"address": "127.0.0.1"}]}
    html = render(report)
    assert "127.0.0.1:25</h3>" in html
    assert "Get a clear answer" in html and "could not hold an SMTP session with 127.0.0.1" in html


async def test_a_fake_sendmail_8_8_relaying_through_the_percent_hack_gets_the_sendmail_section():
    """Issue 5's 'done when': the engine's own report of such a server, turned into guidance."""
    behaviour = with_banner(BEHAVIOURS["open-percent"], "sendmail")
    config = SuiteConfig(
        canary_domain="canary.example.net",
        canary_secret="s",
        command_timeout=5.0,
        vector_ids=["plain", "percent-host", "control-inbound"],
    )
    with FakeSMTPServer(behaviour) as server:
        host = HostTarget("127.0.0.1", server.port, name=HOSTNAME, mail_domain=LOCAL_DOMAIN)
        report = (await run_suite(HOSTNAME, [host], config)).to_dict()
    guidance = guidance_of(report, 0)
    assert (guidance.family, guidance.name) == ("sendmail", "Sendmail")
    assert [v.id for v in guidance.failing] == ["percent-host"]
    assert guidance.outdated.status == "fail"
    assert "relays mail for anyone by default" in guidance.outdated.detail
    assert guidance.hub.snippet == "define(`SMART_HOST', `[relay.example.edu]')dnl"


def test_a_server_registered_by_address_gets_the_name_its_greeting_gives_in_the_snippets(department):
    server = factories.make_server(department, "127.0.0.1", kind="ip", addresses=["127.0.0.1"])
    report = report_for("postfix", ["plain"], name="")
    report["hosts"][0].update(
        address="127.0.0.1", banner="220 mx.dept.example.edu ESMTP Postfix (Debian/GNU)"
    )

    snippet = guidance_of(report, 0, server=server).steps[0].snippet

    assert "myhostname = mx.dept.example.edu\nmydomain = dept.example.edu" in snippet
    assert "127.0.0.1" not in snippet.split("mynetworks")[0]


@pytest.mark.parametrize(
    "banner", ["220 127.0.0.1 ESMTP", "220 ESMTP ready", "", "421 mx.dept.example.edu busy"]
)
def test_a_greeting_that_names_no_host_gives_no_name(banner):
    assert greeting_name(banner) == ""


def test_the_causes_are_grouped_one_entry_per_weakness_with_the_vectors_it_explains():
    sender = ["spoof-domain", "spoof-host", "spoof-iplit", "sender-localhost"]
    guidance = guidance_of(report_for("postfix", ["plain", *sender, "percent-host"]), 0)

    assert [(c.kind, [v.id for v in c.vectors]) for c in guidance.causes] == [
        ("open", ["plain"]),
        ("sender", sender),
        ("percent", ["percent-host"]),
    ]
    assert "check_sender_access" in guidance.causes[1].why


def test_an_inconclusive_host_is_told_what_to_do_next_by_the_reason():
    report = report_for("postfix")
    report["hosts"][0].update(
        verdict="inconclusive",
        vectors=[
            {"id": "plain", "outcome": "deferred", "reason": "greylisted", "evidence": "canary-final"},
            {
                "id": "spoof-domain",
                "outcome": "rejected",
                "reason": "relay_denied",
                "evidence": "canary-final",
            },
        ],
    )

    (step,) = guidance_of(report, 0).next_steps

    assert step.startswith("Your server greylisted the test")


def test_every_vector_of_the_catalogue_has_a_kind_with_a_reason_in_the_generic_text():
    """A vector without a kind would be a cause of its own, with the catalogue's long text."""
    from relaytests.guidance import _kind, _load
    from relaytests.probe.vectors import catalogue

    generic = _load("generic")["why"]
    relay_vectors = [v for v in catalogue() if v.evidence != "control"]
    assert {v.id: _kind(v.id) in generic for v in relay_vectors} == {v.id: True for v in relay_vectors}


def test_sender_variants_are_named_under_their_trick_only_when_the_trick_alone_did_not_get_through():
    variants = ["percent-host-litfrom", "percent-iplit-litfrom", "percent-iplit-nullfrom", "bang-litfrom"]
    report = report_for("postfix", ["percent-host", *variants])
    guidance = guidance_of(report, 0)

    (percent, bang) = guidance.causes
    assert [(t.id, [v.id for v in t.vectors]) for t in percent.tricks] == [
        ("percent-host", ["percent-host", "percent-host-litfrom"]),
        ("percent-iplit", ["percent-iplit-litfrom", "percent-iplit-nullfrom"]),
    ]
    assert [t.id for t in bang.tricks] == ["bang"]
    html = render(report)
    causes = re.findall(r'<li class="cause">(.*?)</li>', html, re.S)
    assert len(causes) == 2  # one per weakness, not one per variant
    # percent-host got through with the probe's own sender: its variant needs no mention.
    assert named_vectors(html) == {"percent-host", *variants[1:]}
    assert ">+litfrom</code> <code" in causes[0] and "(only " in causes[0]


def test_the_plain_vector_s_extension_forms_need_no_reason_of_their_own_when_the_plain_one_got_through():
    extensions = ["plain-dsn", "plain-smtputf8", "rcpt-after-local", "rcpt-iplit"]
    with_plain = guidance_of(report_for("postfix", ["plain", *extensions]), 0)
    assert [(c.kind, [v.id for v in c.vectors]) for c in with_plain.causes] == [
        ("open", ["plain", *extensions])
    ]
    without = guidance_of(report_for("postfix", extensions), 0)
    assert [c.kind for c in without.causes] == ["extensions", "first-recipient", "literal"]
    assert "BDAT" in without.causes[0].why
