"""Reply classification and host verdicts, from replies real servers send."""

import pytest

from relaytests.probe import verdict
from relaytests.probe.report import VectorResult
from relaytests.probe.verdict import classify, host_verdict, relay_warnings


@pytest.mark.parametrize(
    ("code", "text", "step", "expected"),
    [
        (554, "5.7.1 <r@x.net>: Relay access denied", "rcpt", ("rejected", "relay_denied")),
        (454, "4.7.1 <r@x.net>: Relay access denied", "rcpt", ("deferred", "relay_denied")),
        (
            550,
            "5.7.1 <r@x.net>... Relaying denied. Proper authentication required.",
            "rcpt",
            ("rejected", "relay_denied"),
        ),
        (550, "relay not permitted", "rcpt", ("rejected", "relay_denied")),
        (
            550,
            "5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
            "rcpt",
            ("rejected", "relay_denied"),
        ),
        (
            553,
            "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            "rcpt",
            ("rejected", "relay_denied"),
        ),
        (
            554,
            "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "rcpt",
            ("rejected", "client_blocked"),
        ),
        (550, "5.3.2 Service currently unavailable", "rcpt", ("rejected", "client_blocked")),
        (450, "4.3.2 Service currently unavailable", "rcpt", ("deferred", "screening")),
        (530, "5.7.0 Must issue a STARTTLS command first", "mail", ("rejected", "tls_required")),
        (530, "5.7.0 Authentication required", "mail", ("rejected", "auth_required")),
        (530, "5.7.1 Client was not authenticated", "mail", ("rejected", "auth_required")),
        (550, "5.5.1 Protocol error", "rcpt", ("rejected", "protocol_error")),
        (554, "5.5.0 Error: SMTP protocol synchronization", "rcpt", ("rejected", "protocol_error")),
        (503, "5.5.1 Error: need MAIL command", "rcpt", ("rejected", "protocol_error")),
        (
            504,
            "5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
            "rcpt",
            ("rejected", "helo_policy"),
        ),
        (
            553,
            "5.1.8 <a@nx.example>... Domain of sender address a@nx.example does not exist",
            "mail",
            ("rejected", "sender_policy"),
        ),
        (
            450,
            "4.2.0 <r@x.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/",
            "rcpt",
            ("deferred", "greylisted"),
        ),
        (451, "4.7.1 Please try again later", "rcpt", ("deferred", "rate_limited")),
        (421, "4.7.0 Try again later, closing connection", "mail", ("deferred", "rate_limited")),
        (501, "5.1.3 Bad recipient address syntax", "rcpt", ("rejected", "syntax")),
        (550, "Restricted characters in address", "rcpt", ("rejected", "syntax")),
        (
            550,
            "5.1.1 <r@x.net>: Recipient address rejected: User unknown in local recipient table",
            "rcpt",
            ("rejected", "recipient_unknown"),
        ),
        (550, "5.7.1 Message rejected", "rcpt", ("rejected", "relay_denied")),  # enhanced-code fallback
        (550, "5.7.1 Message rejected", "mail", ("rejected", "sender_policy")),
        # a permanent refusal of a recipient in words we do not know still refuses it; not so a sender
        (550, "Go away", "rcpt", ("rejected", "refused_other")),
        (550, "Administrative prohibition", "rcpt", ("rejected", "refused_other")),
        (550, "Go away", "mail", ("rejected", "other")),
        (421, "Go away", "rcpt", ("deferred", "rate_limited")),
        (451, "Local error", "rcpt", ("deferred", "temp_other")),
        (250, "2.1.5 Ok", "rcpt", ("accepted", "accepted")),
        # the refused address is echoed, and our tokens carry vector ids that look like reasons
        (
            554,
            "5.7.1 <r-abcdefghij-starttls-0123456789@c.net>: Relay access denied",
            "rcpt",
            ("rejected", "relay_denied"),
        ),
        (
            550,
            "r-abcdefghij-helo-self-0123456789@c.net... Relaying denied",
            "rcpt",
            ("rejected", "relay_denied"),
        ),
    ],
)
def test_replies_are_classified_by_reason(code, text, step, expected):
    assert classify(code, text, step) == expected


def vector(id_, outcome, reason, *, tier="core", evidence="canary-final", delivered=None):
    return VectorResult(
        id=id_,
        helo="p",
        mail_from="<a>",
        rcpt_to="<b>",
        outcome=outcome,
        reason=reason,
        code=250 if outcome == "accepted" else 554,
        reply="...",
        tier=tier,
        evidence=evidence,
        delivered=delivered,
    )


def test_every_core_vector_refused_is_secure():
    results = [
        vector("plain", "rejected", "relay_denied"),
        vector("bang", "rejected", "syntax", evidence="target-final"),
    ]
    assert host_verdict(results, {})[0] == "secure"


def test_a_delivered_canary_is_an_open_relay():
    results = [vector("plain", "accepted", "accepted", delivered=True)]
    verdict, reason = host_verdict(results, {})
    assert verdict == "open_relay"
    assert "plain" in reason


def test_an_accepted_outside_recipient_without_delivery_accepts_relay_and_says_why():
    verdict, reason = host_verdict([vector("plain", "accepted", "accepted")], {})
    assert verdict == "accepts_relay"
    assert "canary delivery is off" in reason


def test_a_routed_address_accepted_alone_is_suspicion_not_relay():
    results = [
        vector("plain", "rejected", "relay_denied"),
        vector("percent-host", "accepted", "accepted", evidence="target-final"),
    ]
    assert host_verdict(results, {})[0] == "inconclusive"
    assert [c.id for c in relay_warnings(results)] == ["routed-addresses-accepted"]


def test_a_blocked_probe_is_inconclusive_not_secure():
    results = [vector("plain", "rejected", "client_blocked")]
    verdict, reason = host_verdict(results, {})
    assert verdict == "inconclusive"
    assert "client_blocked (plain)" in reason


def test_sender_policy_refuses_only_the_vectors_that_test_the_sender():
    results = [
        vector("spoof-domain", "rejected", "sender_policy"),
        vector("plain", "rejected", "sender_policy"),
    ]
    verdict, reason = host_verdict(results, {"spoof-domain": ("sender_policy",)})
    assert verdict == "inconclusive"
    assert "sender_policy (plain)" in reason


def test_a_control_refused_for_the_probe_itself_makes_refusals_meaningless():
    results = [
        vector("plain", "rejected", "relay_denied"),
        vector("control-inbound", "rejected", "client_blocked", tier="ctl", evidence="control"),
    ]
    verdict, reason = host_verdict(results, {})
    assert verdict == "inconclusive"
    assert "refuses the probe itself" in reason


def test_a_temporary_relay_refusal_counts_as_refusal_with_a_warning():
    results = [vector("plain", "deferred", "relay_denied")]
    assert host_verdict(results, {})[0] == "secure"
    assert [c.status for c in relay_warnings(results)] == ["warn"]


def test_a_greylisting_reason_is_shortened_at_a_space_never_inside_its_url():
    url = "http://postgrey.schweikert.ch/help/dept.example.edu.html"
    reply = (
        "450 4.2.0 <r-abcdefghij-0123abcd-plain-0123456789@canary.example.net>: Recipient address "
        "rejected: Greylisted for 300 seconds, please come back later; see " + url
    )
    greylisted = VectorResult("plain", "probe", "<a@b>", "<c@d>", "deferred", "greylisted", 450, reply)
    verdict_, reason = host_verdict([greylisted], {})
    assert verdict_ == "inconclusive"
    assert "http" not in reason or url in reason  # a link whole or not at all
    assert reason.endswith(" …")
    assert verdict.excerpt("550 short") == "550 short"
