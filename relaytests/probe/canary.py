"""Canary tokens: every relay vector's recipient carries one, so a delivery proves which run, host and
vector relayed.

A token is ``r-<run>-<host>-<vector>-<mac>`` (recipient) or ``b-<run>-<host>-<vector>-<mac>``
(envelope sender, so bounces and sender callouts are recognised). ``<host>`` is a short tag of the
tested address and port (an IPv6 address does not fit a local part of 64 octets literally), which
the report maps back to its host: a message relayed by one MX host proves nothing about another.
Only ``[a-z0-9-]`` so it survives every rewrite; the MAC, over all the fields, stops anyone from
forging a token for a run they did not start or moving one to another host or vector.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

RUN_ID_LENGTH = 10
HOST_TAG_LENGTH = 8
MAC_LENGTH = 10
RECIPIENT, SENDER = "r", "b"
_TOKEN = re.compile(
    rf"^([rb])-([a-z0-9]{{{RUN_ID_LENGTH}}})-([0-9a-f]{{{HOST_TAG_LENGTH}}})-([a-z0-9-]+)-([0-9a-f]{{{MAC_LENGTH}}})$"
)


@dataclass(frozen=True)
class CanaryToken:
    kind: str  # RECIPIENT or SENDER
    run_id: str
    host_tag: str  # host_tag(address, port) of the host the token was sent to
    vector_id: str


def new_run_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(RUN_ID_LENGTH))


def host_tag(address: str, port: int) -> str:
    """The tested host in a token: not secret (the MAC protects it), only short and fixed-length."""
    return hashlib.sha256(f"{address.lower()}|{port}".encode()).hexdigest()[:HOST_TAG_LENGTH]


def _mac(secret: str, kind: str, run_id: str, tag: str, vector_id: str) -> str:
    message = f"{kind}:{run_id}:{tag}:{vector_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:MAC_LENGTH]


def make_token(secret: str, kind: str, run_id: str, tag: str, vector_id: str) -> str:
    return f"{kind}-{run_id}-{tag}-{vector_id}-{_mac(secret, kind, run_id, tag, vector_id)}"


def parse_token(secret: str, local_part: str) -> CanaryToken | None:
    """The token in a local part, or None when it is malformed or its MAC is wrong."""
    match = _TOKEN.match(local_part.strip().lower())
    if not match:
        return None
    kind, run_id, tag, vector_id, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(secret, kind, run_id, tag, vector_id)):
        return None
    return CanaryToken(kind, run_id, tag, vector_id)


def token_fields(token: str) -> CanaryToken | None:
    """The fields of a token the receiver already verified (without the secret); None when malformed."""
    match = _TOKEN.match(token)
    return CanaryToken(*match.groups()[:4]) if match else None
