"""Whether a server's certificate names it, as a client checking it would decide (RFC 6125)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from relaytests.probe.hygiene import certificate_names_host

CA = trustme.CA()


def certificate(*identities: str) -> x509.Certificate:
    issued = CA.issue_cert(*identities)
    return x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())


@pytest.mark.parametrize(
    ("identities", "host", "names_it"),
    [
        (("mx.dept.example.edu",), "mx.dept.example.edu", True),
        (("mx.dept.example.edu",), "MX.Dept.Example.EDU", True),
        (("*.dept.example.edu",), "mx.dept.example.edu", True),
        (("*.dept.example.edu",), "a.mx.dept.example.edu", False),  # one label only
        (("*.dept.example.edu",), "dept.example.edu", False),
        (("mail.example.edu",), "mx.dept.example.edu", False),
        (("192.0.2.25",), "192.0.2.25", True),  # an IP subjectAltName
        (("mx.dept.example.edu",), "192.0.2.25", False),
        (("2001:db8::25",), "2001:db8::25", True),
        (("xn--mller-kva.example.edu",), "xn--mller-kva.example.edu", True),  # IDNA
    ],
)
def test_the_certificate_names_the_host_as_a_checking_client_decides(identities, host, names_it):
    assert certificate_names_host(certificate(*identities), host) is names_it


def test_a_name_only_in_the_common_name_names_no_host():
    """Clients stopped reading the common name (RFC 6125, section 6.4.4); trustme always adds a SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "mx.dept.example.edu")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))  # fmt: skip
    assert certificate_names_host(cert, "mx.dept.example.edu") is False
