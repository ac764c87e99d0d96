"""Outcomes with reasons, and verdicts (docs/architecture.md, Verdicts).

The verdict reads the reason, not the reply class: Postfix's default answers relay attempts
with "454 4.7.1 Relay access denied", a 4xx that is a refusal, while a 5xx for a blocklisted
probe is no relay result at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from relaytests.probe.report import Check, VectorResult
from relaytests.probe.vocabulary import Verdict

# Reasons fixed by the reply code alone, before the text is read.
CODE_REASONS = {503: "protocol_error", 421: "rate_limited"}

# Reasons read from the reply text, first match wins. The order matters: "Relaying denied.
# Proper authentication required." is a relay refusal; a DNSBL refusal also carries 5.7.1.
TEXT_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("tls_required", r"starttls|tls required|encryption required|must use tls"),
        ("greylisted", r"grey-?list|gray-?list|not yet authori[sz]ed|DOC-1369"),
        ("screening", r"^4\.3\.2 service currently unavailable"),  # postscreen deep protocol tests
        (
            "client_blocked",
            r"blocked using|black-?list|block-?list|spamhaus|spamcop|barracuda|dnsbl|\brbl\b|"
            r"\bpbl\b|client host .*(?:blocked|rejected)|5\.3\.2 service currently unavailable",
        ),
        ("protocol_error", r"protocol error|synchroni[sz]ation|bad sequence|pipelining"),
        ("rate_limited", r"too many|rate limit|all server ports are busy|connection limit|try again later"),
        (
            "relay_denied",
            r"relay access denied|relaying denied|relay not permitted|not allowed to relay|"
            r"unable to relay|as a relay|allowed rcpthosts?|rcpthosts|relaying (?:is )?not|"
            r"no relay|relay.*(?:prohibited|not allowed|denied)",
        ),
        (
            "auth_required",
            r"authenticat(?:ion|e) (?:is )?required|not authenticated|must authenticate|"
            r"requires authentication",
        ),
        ("helo_policy", r"\bhelo\b|\behlo\b"),
        (
            "sender_policy",
            r"sender address rejected|domain of sender|sender verify|sender domain|\bspf\b|"
            r"dmarc|does not resolve|unverified sender|sender .*(?:rejected|denied|refused)",
        ),
        (
            "recipient_unknown",
            r"user unknown|unknown user|no such (?:user|mailbox|recipient)|"
            r"mailbox unavailable|recipient address rejected: user",
        ),
        (
            "syntax",
            r"syntax|invalid address|bad address|malformed|restricted characters|address not allowed|"
            r"illegal|not a valid|route-?addr|unbalanced|invalid (?:recipient|sender)|bad recipient",
        ),
    )
)
# Servers echo the address they refuse, and our tokens carry vector ids ("starttls", "helo-self"):
# the echo is removed before the patterns are read, so an address can never look like a reason.
ECHOED_ADDRESS = re.compile(r"<[^>]*>|\b[rb]-[a-z0-9]{10}-[a-z0-9-]+-[0-9a-f]{10}\b\S*", re.IGNORECASE)
ENHANCED_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")

# When the text names nothing we know: the enhanced status code's (subject, detail) at a step ...
ENHANCED_REASONS = {
    ("mail", "1", None): "sender_policy",
    ("mail", "7", None): "sender_policy",
    ("rcpt", "7", "1"): "relay_denied",
    ("rcpt", "7", "54"): "relay_denied",
}
# ... then the reply code ...
FALLBACK_CODE_REASONS = {501: "syntax", 553: "syntax", 555: "syntax", 530: "auth_required"}
# ... then the reply class at a step: a permanent refusal of a recipient refuses that recipient,
# whatever its words (Exim's default ACLs answer routing tricks "550 Administrative prohibition").
# The 5xx that are not about the recipient (the probe is blocked, a protocol error, too many
# errors) were named by their text or code above and never get here.
CLASS_REASONS = {("rcpt", 5): "refused_other"}

REFUSALS = frozenset({"relay_denied", "auth_required", "syntax", "recipient_unknown", "refused_other"})
NOT_ABOUT_THE_RECIPIENT = frozenset({"client_blocked", "protocol_error", "helo_policy", "rate_limited"})


def classify(code: int, text: str, step: str) -> tuple[str, str]:
    """(outcome, reason) of one reply; step is mail, rcpt, data or connect."""
    outcome = "accepted" if code < 400 else "deferred" if code < 500 else "rejected"
    if outcome == "accepted":
        return outcome, "accepted"
    text = ECHOED_ADDRESS.sub("", text)
    return outcome, CODE_REASONS.get(code) or _reason_from_text(text) or _fallback_reason(code, text, step)


def _reason_from_text(text: str) -> str | None:
    return next((reason for reason, pattern in TEXT_REASONS if pattern.search(text)), None)


def _fallback_reason(code: int, text: str, step: str) -> str:
    """The enhanced status code, then the code, then its class, when the text names nothing we know."""
    match = ENHANCED_CODE.match(text.strip())
    subject, detail = (match.group(2), match.group(3)) if match else ("", "")
    return (
        ENHANCED_REASONS.get((step, subject, detail))
        or ENHANCED_REASONS.get((step, subject, None))
        or FALLBACK_CODE_REASONS.get(code)
        or CLASS_REASONS.get((step, code // 100))
        or ("temp_other" if code < 500 else "other")
    )


def is_refusal(result: VectorResult, extra_refusals: tuple[str, ...]) -> bool:
    return result.outcome in ("rejected", "deferred") and (
        result.reason in REFUSALS or result.reason in extra_refusals
    )


def host_verdict(
    results: list[VectorResult], refusals_by_id: dict[str, tuple[str, ...]]
) -> tuple[Verdict, str]:
    """(verdict, reason) of one host from its vector results (docs/architecture.md, Verdicts)."""
    relay_attempts = [r for r in results if r.evidence != "control"]
    delivered = [r.id for r in relay_attempts if r.delivered]
    if delivered:
        return Verdict.OPEN_RELAY, f"relayed test messages arrived at the canary: {_ids(delivered)}"
    accepted = [r for r in relay_attempts if r.outcome == "accepted" and r.evidence == "canary-final"]
    if accepted:
        return Verdict.ACCEPTS_RELAY, _accepted_reason(accepted)
    blocked_control = [
        r
        for r in results
        if r.evidence == "control" and r.outcome != "accepted" and r.reason in NOT_ABOUT_THE_RECIPIENT
    ]
    if blocked_control:
        r = blocked_control[0]
        return Verdict.INCONCLUSIVE, f"the server refuses the probe itself ({r.reason}: {excerpt(r.reply)})"
    unsettled = [
        r for r in relay_attempts if r.tier == "core" and not is_refusal(r, refusals_by_id.get(r.id, ()))
    ]
    if unsettled:
        return Verdict.INCONCLUSIVE, _unsettled_reason(unsettled)
    if not any(r.tier == "core" for r in relay_attempts):
        return Verdict.INCONCLUSIVE, "no core vector was tested"
    return Verdict.SECURE, "every core vector was refused for a relay reason"


def _accepted_reason(accepted: list[VectorResult]) -> str:
    why = {
        None: "canary delivery is off, so nothing proves the mail would leave",
        False: "no canary message arrived within the wait (queued, discarded, or bounced later)",
    }[accepted[0].delivered]
    return f"accepted outside recipients for {_ids([r.id for r in accepted])}; not proven: {why}"


def _unsettled_reason(unsettled: list[VectorResult]) -> str:
    by_reason: dict[str, list[str]] = {}
    for r in unsettled:
        by_reason.setdefault(r.reason, []).append(r.id)
    parts = [f"{reason} ({_ids(ids)})" for reason, ids in by_reason.items()]
    first = unsettled[0]
    example = f"; e.g. {first.id}: {excerpt(first.reply)}" if first.reply else ""
    return "not every core vector was refused: " + "; ".join(parts) + example


def excerpt(reply: str, most: int = 160) -> str:
    """A reply shortened at a space, never inside a word or an address (a cut URL reads as a broken link)."""
    if len(reply) <= most:
        return reply
    return reply[:most].rsplit(" ", 1)[0] + " …"


def _ids(ids: list[str], most: int = 6) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


# Findings that do not change the verdict but that an admin must see:
# (check id, which vector results it is about, what to tell the admin).
RELAY_WARNINGS: tuple[tuple[str, Callable[[VectorResult], bool], str], ...] = (
    (
        "relay-refused-temporarily",
        lambda r: r.reason == "relay_denied" and r.outcome == "deferred",
        "Relaying is refused only with a temporary (4xx) reply, so senders keep retrying; "
        "refuse it permanently (Postfix: reject_unauth_destination).",
    ),
    (
        "routed-addresses-accepted",
        lambda r: r.outcome == "accepted" and r.evidence == "target-final" and not r.delivered,
        "The server accepts routed addresses that end at itself (delivered locally or bounced later); "
        "without a canary delivery this is suspicion, not proof.",
    ),
    (
        "greylisted-outside-recipient",
        lambda r: r.reason == "greylisted" and r.evidence == "canary-final",
        "Greylisting answered for an outside recipient: greylisting usually runs after the relay check, "
        "so the relay check may have passed. Re-test after the greylisting delay.",
    ),
)
RELAY_WARNING_IDS = tuple(check_id for check_id, _, _ in RELAY_WARNINGS)


def relay_warnings(results: list[VectorResult]) -> list[Check]:
    checks = []
    for check_id, concerns, advice in RELAY_WARNINGS:
        ids = [r.id for r in results if concerns(r)]
        if ids:
            checks.append(Check(check_id, "warn", f"{advice} Vectors: {_ids(ids)}.", {"vectors": ids}))
    return checks


def summary(verdict: str, host_reasons: list[str]) -> str:
    """One paragraph for a person: the verdict in words, then why, per host."""
    return " ".join([Verdict(verdict).summary, *host_reasons])
