"""Checks besides relay: banner, software, TLS (STARTTLS or implicit) and its certificate, AUTH before TLS,
VRFY and EXPN.

They run on the survey connection, before any vector, so that their non-mail commands never
count against the error limits of the connections that carry the vectors.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from relaytests.probe import dnschecks, fingerprint, outdated
from relaytests.probe.dnschecks.client import is_ip_address
from relaytests.probe.report import Check, HostReport
from relaytests.probe.sanitise import safe_text
from relaytests.probe.session import SessionFailure, SmtpSession, TlsInfo

if TYPE_CHECKING:
    from cryptography import x509

# How a reply to VRFY or EXPN reads: 252 ("cannot verify, but will try") is what RFC 5321 advises.
DISCLOSING_CODES = (250, 251)
MAX_CERTIFICATE_FIELD = 512  # characters kept of a subject, an issuer or a name
MAX_CERTIFICATE_NAMES = 100
# How TLS came up, by the id of the check that records its certificate.
TLS_STARTS = {"starttls": "STARTTLS", "implicit-tls": "TLS on connect (RFC 8314)"}


async def survey_checks(session: SmtpSession, host: HostReport, target_host: str | None) -> list[Check]:
    checks = [
        Check("banner", "info", f"The server greets with: {host.banner}", {"banner": host.banner}),
        _software_check(host),
        outdated.outdated_check(host.software, host.banner),
        _auth_before_tls(session),
    ]
    if "XCLIENT" in session.extensions:
        checks.append(
            Check(
                "xclient",
                "fail",
                "The server offers XCLIENT to the probe: any client can claim to be 127.0.0.1 and inherit its "
                "rights (Postfix: empty smtpd_authorized_xclient_hosts).",
            )
        )
    # The checks that cost the server commands. Against a server that delays every reply the
    # relay vectors need the host's time budget more: what is left of these is not asked.
    commands = [
        (
            "vrfy",
            lambda: _disclosure_check(session, "VRFY", "vrfy", "VRFY confirms whether an address exists"),
        ),
        (
            "expn",
            lambda: _disclosure_check(session, "EXPN", "expn", "EXPN lists the members of a mailing list"),
        ),
    ]
    if session.implicit_tls and session.tls_info:
        checks.append(_certificate_check(session.tls_info, target_host, "implicit-tls"))
    elif "STARTTLS" in session.extensions:
        commands.append(("starttls", lambda: _starttls_check(session, target_host)))
    else:
        checks.append(
            Check(
                "starttls",
                "warn",
                "STARTTLS is not offered: mail to and from this server crosses the network unencrypted.",
            )
        )
    for check_id, check in commands:
        checks.append(
            _not_asked_of_a_tarpit(check_id, session) if session.slows_every_reply else await check()
        )
    return checks


def _not_asked_of_a_tarpit(check_id: str, session: SmtpSession) -> Check:
    return Check(
        check_id,
        "info",
        f"Not checked: the server delays every reply (about {session.slowest_reply:.0f} s), so the "
        "probe kept its time for the relay vectors.",
        {"not_run": "tarpit"},
    )


def _software_check(host: HostReport) -> Check:
    found = host.software.family != "unknown"
    detail = (
        f"Likely {fingerprint.describe(host.software)} (from the greeting and EHLO reply; banners can lie)."
        if found
        else "The software could not be recognised from the greeting or the EHLO reply."
    )
    return Check(
        "software", "info", detail, {"family": host.software.family, "version": host.software.version}
    )


def _auth_before_tls(session: SmtpSession) -> Check:
    extensions = session.extensions
    if session.implicit_tls:
        return Check(
            "auth-before-tls", "pass", "The connection is encrypted from its first byte, AUTH included."
        )
    if "AUTH" in extensions:
        return Check(
            "auth-before-tls",
            "warn",
            f"AUTH ({extensions['AUTH']}) is offered before STARTTLS, so passwords can cross the network "
            "in clear text (Postfix: smtpd_tls_auth_only = yes).",
            {"mechanisms": extensions["AUTH"].split()},
        )
    return Check("auth-before-tls", "pass", "AUTH is not offered on the unencrypted connection.")


async def _disclosure_check(session: SmtpSession, verb: str, check_id: str, what: str) -> Check:
    reply = await session.command(verb, "postmaster")
    if reply.code in DISCLOSING_CODES:
        return Check(
            check_id,
            "warn",
            f"{what}, which helps spammers harvest addresses: {reply.first_line}",
            {"reply": reply.first_line},
        )
    return Check(
        check_id, "pass", f"{verb} gives nothing away: {reply.first_line}", {"reply": reply.first_line}
    )


async def _starttls_check(session: SmtpSession, target_host: str | None) -> Check:
    try:
        info = await session.starttls()
        after = await session.hello(session.helo_name)  # RFC 3207: forget and greet again
    except SessionFailure as exc:
        return Check("starttls", "fail", f"STARTTLS is offered but does not work: {exc.detail}")
    check = _certificate_check(info, target_host)
    if after.is_positive and "AUTH" in session.extensions:
        check.data["auth_after_tls"] = session.extensions["AUTH"].split()
    return check


def _certificate_check(info: TlsInfo, target_host: str | None, check_id: str = "starttls") -> Check:
    how = TLS_STARTS[check_id]
    if not info.certificate_der:
        return Check(
            check_id,
            "warn",
            f"{how} works ({info.version}) but the server sent no certificate.",
            {"protocol": info.version},
        )
    # cryptography and service_identity only once a certificate is read: most runs never do, and
    # importing them costs the relaytest command's start-up.
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(info.certificate_der)
        names = _certificate_names(cert)
    except ValueError as exc:  # OpenSSL served it; cryptography's stricter parser refuses it
        return Check(
            check_id,
            "error",
            f"{how} works ({info.version}) but the certificate could not be read: {safe_text(exc, 300)}",
            {"protocol": info.version},
        )
    expires = cert.not_valid_after_utc
    data = {
        "protocol": info.version,
        "subject": safe_text(cert.subject.rfc4514_string(), MAX_CERTIFICATE_FIELD),
        "issuer": safe_text(cert.issuer.rfc4514_string(), MAX_CERTIFICATE_FIELD),
        "not_after": expires.isoformat(),
        "names": names,
        "name_matches": bool(target_host and certificate_names_host(cert, target_host)),
    }
    problems = []
    if expires < datetime.now(UTC):
        problems.append(f"the certificate expired on {expires:%Y-%m-%d}")
    if target_host and not data["name_matches"]:
        problems.append(
            f"the certificate is not for {target_host} (it names {', '.join(names[:4]) or 'nothing'})"
        )
    if cert.subject == cert.issuer:
        problems.append("the certificate is self-signed")
    summary = (
        f"{how} works ({info.version}); certificate for {data['subject']} from {data['issuer']}, "
        f"valid until {expires:%Y-%m-%d}"
    )
    if problems:
        return Check(check_id, "warn", f"{summary}; but {'; '.join(problems)}.", data)
    return Check(check_id, "pass", f"{summary}.", data)


def _certificate_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names: list[str | bytes] = [
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        ]
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return [safe_text(name, MAX_CERTIFICATE_FIELD).lower() for name in names[:MAX_CERTIFICATE_NAMES]]


def certificate_names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether a client checking the certificate would accept it for `host` (RFC 6125, by service_identity):
    a DNS or IP subjectAltName must match; wildcards stand for one left-most label; the CN is not read."""
    from service_identity import CertificateError, VerificationError
    from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

    verify = verify_certificate_ip_address if is_ip_address(host) else verify_certificate_hostname
    try:
        verify(cert, host)
    except (VerificationError, CertificateError):  # no match, or no subjectAltName at all
        return False
    return True


async def session_setup(session: SmtpSession, kind: str) -> None:
    """What a session variant does between EHLO and MAIL (the TLS variant did it while connecting)."""
    if kind == "auth-failed":
        bogus = base64.b64encode(b"\0relaytest\0not-the-password").decode()
        await session.command("AUTH", f"PLAIN {bogus}")  # refused, we expect; then we carry on regardless
    elif kind == "xclient":
        reply = await session.command("XCLIENT", "ADDR=127.0.0.1 NAME=localhost")
        if reply.is_positive:
            await session.hello(session.helo_name)  # XCLIENT resets the session: greet again


async def dns_host_checks(address: str, names: list[str], config) -> list[Check]:
    """Reverse DNS for every address; blocklists only for addresses the rest of the Internet can see.

    Blocklists list public addresses only, and asking them about a private one tells a third
    party about the university's internal network for nothing.
    """
    if ipaddress.ip_address(address).is_global:
        zones = config.dnsbl_zones if config.dnsbl_zones is not None else dnschecks.DEFAULT_DNSBL_ZONES
        return await dnschecks.host_checks(address, names, resolver=config.resolver, dnsbl_zones=zones)
    (ptr,) = await dnschecks.host_checks(address, names, resolver=config.resolver, dnsbl_zones=())
    if ptr.status in ("warn", "fail"):  # other sites never judge an address they never see
        ptr = Check(ptr.id, "info", f"{ptr.detail} (It matters only for public addresses.)", ptr.data)
    not_public = Check(
        "dnsbl",
        "info",
        f"Blocklists were not asked about {address}: it is not a public address, "
        "so other sites never see it and no blocklist lists it.",
    )
    return [ptr, not_public]


def not_applicable(vectors: list[tuple[str, str]]) -> Check:
    """The vectors left out as (id, why): the detail names each reason once, with its vectors."""
    by_reason: dict[str, list[str]] = {}
    for vector_id, why in vectors:
        by_reason.setdefault(why, []).append(vector_id)
    parts = [f"{', '.join(ids)} ({why})" for why, ids in by_reason.items()]
    return Check(
        "vectors-not-applicable",
        "info",
        f"Not tested, because they do not apply to this server: {'; '.join(parts)}.",
        {"vectors": [f"{vector_id} ({why})" for vector_id, why in vectors]},
    )


def not_run(vectors: list[str], why: str) -> Check:
    return Check(
        "vectors-not-run",
        "info",
        f"Not tested, because {why}; the core vectors ran first: {', '.join(vectors)}.",
        {"vectors": vectors, "reason": "host_budget"},
    )


def vantage_warning(source: str | None) -> Check:
    return Check(
        "vantage",
        "warn",
        f"The probe ran from {source}, inside the university's own networks: a server that trusts campus "
        "addresses looks open from here and may be closed from outside (and the reverse). "
        "Run the test from an outside worker for the Internet's view.",
        {"source_address": source},
    )
