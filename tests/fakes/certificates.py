"""Server certificates for the fakes that need more than trustme's tidy ones.

Both are self-signed EC certificates that OpenSSL serves without complaint:

  hostile-names       the subject's CN and the DNS name in the SAN carry NUL, ESC, OSC and BEL,
                      text that would drive a terminal if the engine passed it on
  malformed-extension a certificate-policies extension whose DER is cut short: OpenSSL never reads
                      it, cryptography refuses the certificate's extensions
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

HOSTILE_NAME = "mx\x00\x1b]0;owned\x07\x1b[2J.example"
TRUNCATED_SEQUENCE = b"\x30\x03\x82\x05x"  # a SEQUENCE that promises more bytes than it holds


def _self_signed(common_name: str, extension: x509.ExtensionType) -> tuple[bytes, bytes]:
    """(certificate, key), both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(extension, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


CERTIFICATES = {
    "hostile-names": lambda: _self_signed(
        HOSTILE_NAME, x509.SubjectAlternativeName([x509.DNSName(HOSTILE_NAME)])
    ),
    "malformed-extension": lambda: _self_signed(
        "mx.dept.example.edu",
        x509.UnrecognizedExtension(ExtensionOID.CERTIFICATE_POLICIES, TRUNCATED_SEQUENCE),
    ),
}
