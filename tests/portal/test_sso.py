"""Single sign-on by the web server in front (REMOTE_USER): off by default, accounts made on first
sign-in, departments and central IT from the entitlements at every sign-in, local sign-in optional."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from relaytests.models import Membership
from tests.portal.factories import PASSWORD, make_department, make_user
from tests.portal.fresh_settings import portal_settings

pytestmark = pytest.mark.django_db
PAGE = "/account/tokens/"  # for signed-in users only
PREFIX = "urn:mace:example.edu:relaytest:"
SSO = {
    "PORTAL_REMOTE_USER": "true",
    "PORTAL_REMOTE_USER_HEADER": "HTTP_X_REMOTE_USER",
    "PORTAL_REMOTE_USER_DEPARTMENT_HEADER": "HTTP_X_ENTITLEMENT",
    "PORTAL_SSO_DEPARTMENT_PREFIX": PREFIX,
    "PORTAL_SSO_CENTRAL_IT_VALUE": f"{PREFIX}central-it",
}
SSO_SETTINGS = (
    "MIDDLEWARE",
    "AUTHENTICATION_BACKENDS",
    *(name for name in SSO if name != "PORTAL_REMOTE_USER"),
    "PORTAL_LOCAL_LOGIN",
)


@pytest.fixture
def sign_on(settings, monkeypatch):
    def configure(**extra: str) -> None:
        read = portal_settings(monkeypatch, SSO | extra)
        for name in SSO_SETTINGS:
            setattr(settings, name, read[name])

    return configure


def signed_in_by_proxy(user_name: str, *entitlements: str, client: Client | None = None):
    client = client or Client()
    response = client.get(PAGE, HTTP_X_REMOTE_USER=user_name, HTTP_X_ENTITLEMENT=";".join(entitlements))
    return client, response


def departments_of(user_name: str) -> set[str]:
    return set(Membership.objects.filter(user__username=user_name).values_list("department__slug", flat=True))


def test_off_by_default_the_header_signs_no_one_in(monkeypatch):
    read = portal_settings(monkeypatch, {})
    assert not any("RemoteUser" in name for name in read["MIDDLEWARE"] + read["AUTHENTICATION_BACKENDS"])
    client = Client()
    response = client.get(PAGE, REMOTE_USER="alice", HTTP_X_REMOTE_USER="alice")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert "_auth_user_id" not in client.session


def test_first_sign_in_creates_the_user_with_the_departments_named(sign_on):
    make_department("Physics"), make_department("Chemistry")
    sign_on()

    client, response = signed_in_by_proxy("bob", f"{PREFIX}physics", "urn:other:thing", f"{PREFIX}no-such")

    assert response.status_code == 200
    assert client.session["_auth_user_id"]
    assert departments_of("bob") == {"physics"}
    user = Membership.objects.get().user
    assert not user.has_usable_password() and not user.is_staff


def test_a_department_no_longer_listed_is_lost_at_the_next_sign_in(sign_on):
    make_department("Physics"), make_department("Chemistry")
    sign_on()
    signed_in_by_proxy("bob", f"{PREFIX}physics", f"{PREFIX}chemistry")
    Membership.objects.filter(department__slug="chemistry").update(alerts=False)
    assert departments_of("bob") == {"physics", "chemistry"}

    signed_in_by_proxy("bob", f"{PREFIX}chemistry")

    assert departments_of("bob") == {"chemistry"}
    assert not Membership.objects.get().alerts  # a membership kept keeps the member's own choice


def test_central_it_comes_and_goes_with_its_value(sign_on):
    sign_on()
    signed_in_by_proxy("carol", f"{PREFIX}central-it")
    assert Membership.objects.count() == 0
    assert User.objects.get(username="carol").is_staff
    signed_in_by_proxy("carol")
    assert not User.objects.get(username="carol").is_staff


def test_without_a_department_header_memberships_are_kept_by_hand(sign_on):
    alice = make_user("alice")
    make_department("Physics", alice)
    sign_on(PORTAL_REMOTE_USER_DEPARTMENT_HEADER="")

    signed_in_by_proxy("alice", f"{PREFIX}chemistry")

    assert departments_of("alice") == {"physics"}


def test_a_session_ends_without_the_header_unless_persistent(sign_on):
    sign_on()
    client, _ = signed_in_by_proxy("bob")
    assert client.get(PAGE).status_code == 302
    sign_on(PORTAL_REMOTE_USER_PERSISTENT="true")
    client, _ = signed_in_by_proxy("bob")
    assert client.get(PAGE).status_code == 200


def test_local_accounts_keep_working_beside_single_sign_on(sign_on):
    make_user("alice")
    sign_on()
    client = Client()
    assert client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert client.get(PAGE).status_code == 200  # no header: a local session is not signed out


def test_local_sign_in_can_be_turned_off(sign_on):
    make_user("alice")
    sign_on(PORTAL_LOCAL_LOGIN="false")
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert signed_in_by_proxy("bob")[1].status_code == 200


def test_turning_off_local_sign_in_needs_single_sign_on(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="PORTAL_REMOTE_USER"):
        portal_settings(monkeypatch, {"PORTAL_LOCAL_LOGIN": "false"})
