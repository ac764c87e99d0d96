"""Personal API tokens: `rtp_<prefix>_<secret>`, shown once and kept only as a SHA-256 digest.

The prefix is public (the token list shows it) and finds the row; the digest of the whole token
decides. A secret of 256 random bits needs no slow hash: nobody can guess it from its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from relaytests import audit
from relaytests.models import ApiToken

SCHEME = "rtp"
PREFIX_BYTES = 4  # 8 hex digits: the public part, unique per token
SECRET_BYTES = 32
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION_SECONDS = 60


class InvalidToken(Exception):
    """Why a presented token is refused, in words for its owner."""


def issue(user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token of the user: the row, and the token text to show once."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    text = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=prefix, digest=digest_of(text), expires_at=expires_at
        )
        audit.record(user, audit.Action.TOKEN_CREATED, token, str(token))
    return token, text


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def authenticate(text: str) -> ApiToken:
    """The valid token that `text` is (its user loaded); InvalidToken says why not."""
    scheme, _, rest = text.partition("_")
    prefix, _, secret = rest.partition("_")
    token = None
    if scheme == SCHEME and secret:
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.digest, digest_of(text)):
        raise InvalidToken("This is not a valid API token.")
    now = timezone.now()
    refusal = token.refusal(now)
    if refusal:
        raise InvalidToken(refusal)
    _note_use(token, now)
    return token


def _note_use(token: ApiToken, now: datetime) -> None:
    stale = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk).update(
        last_used_at=now
    )


def revoke(token: ApiToken, by) -> None:
    """Revoke the token for `by` (its user, or central IT); a token revoked already stays as it was."""
    with transaction.atomic():
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            audit.record(by, audit.Action.TOKEN_REVOKED, token, str(token))
