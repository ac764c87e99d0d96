"""Single sign-on, each way off unless set: the web server in front (PORTAL_REMOTE_USER) or OpenID
Connect (PORTAL_OIDC).

The web server (Shibboleth, mod_auth_mellon) signs the user in and passes their name, or the OpenID
provider vouches for them with a signed ID token; the portal creates the account on first sign-in.
When PORTAL_REMOTE_USER_DEPARTMENT_HEADER (or PORTAL_OIDC_DEPARTMENT_CLAIM) names the attribute that
lists the user's entitlements, each value ``PORTAL_SSO_DEPARTMENT_PREFIX + slug`` makes them a
member of that department and every other membership goes, at each sign-in: central IT adds no one
by hand, and who loses an entitlement loses the department. PORTAL_SSO_CENTRAL_IT_VALUE, when set,
decides central IT (``is_staff``) the same way.
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth import backends
from django.contrib.auth import middleware as auth_middleware
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from relaytests.models import Department, Membership

logger = logging.getLogger(__name__)


class ConfiguredHeader:
    """The request attribute the user name is in, from the settings instead of the class."""

    def __init__(self, get_response):
        super().__init__(get_response)  # type: ignore[call-arg]
        self.header = settings.PORTAL_REMOTE_USER_HEADER


class RemoteUserMiddleware(ConfiguredHeader, auth_middleware.RemoteUserMiddleware):
    """Signs out a single-sign-on session on the first request without the header."""


class PersistentRemoteUserMiddleware(ConfiguredHeader, auth_middleware.PersistentRemoteUserMiddleware):
    """Keeps the session when only the sign-in page is protected and the header comes there alone."""


class RemoteUserBackend(backends.RemoteUserBackend):
    def configure_user(self, request, user, created=True):
        if created:
            # Not the empty password Django leaves: that one counts as usable, and a password reset
            # would give the account a local password beside the web server's sign-in.
            user.set_unusable_password()
            user.save(update_fields=["password"])
        header = settings.PORTAL_REMOTE_USER_DEPARTMENT_HEADER
        if header:
            apply_entitlements(user, split_values(request.META.get(header, "")))
        return user


class OIDCBackend(OIDCAuthenticationBackend):
    """Accounts by a configured claim (the library's default, the e-mail address, can change hands or
    be shared), with departments from the entitlement claim at each sign-in."""

    def authenticate(self, request, **kwargs):
        """A provider that is down or a token that does not verify sends the user back to the sign-in
        page with a message (the library would answer 500 or 400)."""
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, requests.RequestException) as error:
            logger.warning("OpenID Connect sign-in refused: %s", error)
            return None

    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; an ID token must also be meant for us."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")  # one string or a list, as a claim's values
        if self.OIDC_RP_CLIENT_ID not in claim_values(audience):
            raise SuspiciousOperation(f"the ID token is for {audience!r}, not this portal")
        return payload

    def username(self, claims) -> str:
        value = claims.get(settings.PORTAL_OIDC_USERNAME_CLAIM)
        return value if isinstance(value, str) else ""

    def verify_claims(self, claims) -> bool:
        return bool(self.username(claims))

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=self.username(claims))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(self.username(claims))  # password None: unusable
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        email = claims.get("email")
        if isinstance(email, str) and email != user.email:
            user.email = email
            user.save(update_fields=["email"])
        claim = settings.PORTAL_OIDC_DEPARTMENT_CLAIM
        if claim:
            apply_entitlements(user, claim_values(claims.get(claim)))
        return user


def claim_values(value) -> list[str]:
    """A claim's values: providers send a list, some a single string; anything else names nothing."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def split_values(text: str) -> list[str]:
    """Shibboleth and mod_auth_mellon join an attribute's values with ";"."""
    return [value.strip() for value in text.split(";") if value.strip()]


def department_slugs(values: list[str]) -> set[str]:
    prefix = settings.PORTAL_SSO_DEPARTMENT_PREFIX
    return {value.removeprefix(prefix) for value in values if value.startswith(prefix)}


@transaction.atomic
def apply_entitlements(user, values: list[str]) -> None:
    """Makes the user's memberships (and, if configured, central IT) what the values say. Slugs of no
    department are ignored: central IT creates departments, the identity provider only names them."""
    listed = set(Department.objects.filter(slug__in=department_slugs(values)).values_list("pk", flat=True))
    Membership.objects.filter(user=user).exclude(department__in=listed).delete()
    kept = set(Membership.objects.filter(user=user).values_list("department", flat=True))
    Membership.objects.bulk_create([Membership(user=user, department_id=pk) for pk in listed - kept])
    central_it = settings.PORTAL_SSO_CENTRAL_IT_VALUE
    if central_it and user.is_staff != (central_it in values):
        user.is_staff = central_it in values
        user.save(update_fields=["is_staff"])
