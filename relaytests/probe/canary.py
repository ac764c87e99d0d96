"""Canary tokens: every relay vector's recipient carries one, so a delivery proves which run and vector relayed.

A token is ``r-<run>-<vector>-<mac>`` (recipient) or ``b-<run>-<vector>-<mac>`` (envelope sender,
so bounces and sender callouts are recognised). Only ``[a-z0-9-]`` so it survives every rewrite;
the MAC stops anyone from forging deliveries for a run they did not start.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

RUN_ID_LENGTH = 10
MAC_LENGTH = 10
RECIPIENT, SENDER = "r", "b"
_TOKEN = re.compile(rf"^([rb])-([a-z0-9]{{{RUN_ID_LENGTH}}})-([a-z0-9-]+)-([0-9a-f]{{{MAC_LENGTH}}})$")


@dataclass(frozen=True)
class CanaryToken:
    kind: str  # RECIPIENT or SENDER
    run_id: str
    vector_id: str


def new_run_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(RUN_ID_LENGTH))


def _mac(secret: str, kind: str, run_id: str, vector_id: str) -> str:
    message = f"{kind}:{run_id}:{vector_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:MAC_LENGTH]


def make_token(secret: str, kind: str, run_id: str, vector_id: str) -> str:
    return f"{kind}-{run_id}-{vector_id}-{_mac(secret, kind, run_id, vector_id)}"


def parse_token(secret: str, local_part: str) -> CanaryToken | None:
    """The token in a local part, or None when it is malformed or its MAC is wrong."""
    match = _TOKEN.match(local_part.strip().lower())
    if not match:
        return None
    kind, run_id, vector_id, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(secret, kind, run_id, vector_id)):
        return None
    return CanaryToken(kind, run_id, vector_id)
