"""Single sign-on through the web server in front (REMOTE_USER), off unless PORTAL_REMOTE_USER is set.

The web server (Shibboleth, mod_auth_mellon) signs the user in and passes their name; the portal
creates the account on first sign-in. When PORTAL_REMOTE_USER_DEPARTMENT_HEADER names the attribute
that lists the user's entitlements, each value ``PORTAL_SSO_DEPARTMENT_PREFIX + slug`` makes them a
member of that department and every other membership goes, at each sign-in: central IT adds no one
by hand, and who loses an entitlement loses the department. PORTAL_SSO_CENTRAL_IT_VALUE, when set,
decides central IT (``is_staff``) the same way.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import backends
from django.contrib.auth import middleware as auth_middleware
from django.db import transaction

from relaytests.models import Department, Membership


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
