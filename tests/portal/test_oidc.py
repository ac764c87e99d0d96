"""Single sign-on by OpenID Connect against a real provider on loopback (tests/oidcprovider.py): off
by default, accounts made on first sign-in, departments and central IT from a claim at every
sign-in, and no sign-in from a forged token, another client's token or a provider that is down."""

from __future__ import annotations

import importlib

import pytest
import requests
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.urls import clear_url_caches

import portal.urls
from relaytests.models import Membership
from tests.oidcprovider import Provider, new_key
from tests.portal.factories import PASSWORD, make_department, make_user
from tests.portal.fresh_settings import portal_settings
from tests.postfix import free_port

pytestmark = pytest.mark.django_db
PREFIX = "urn:mace:example.edu:relaytest:"
CLAIMS = {
    "PORTAL_OIDC_USERNAME_CLAIM": "preferred_username",
    "PORTAL_OIDC_DEPARTMENT_CLAIM": "eduperson_entitlement",
    "PORTAL_SSO_DEPARTMENT_PREFIX": PREFIX,
    "PORTAL_SSO_CENTRAL_IT_VALUE": f"{PREFIX}central-it",
}
LOGIN = "/accounts/login/"
SIGN_IN_SETTINGS = (
    "OIDC_",
    "PORTAL_OIDC",
    "PORTAL_SSO_",
    "PORTAL_LOCAL_LOGIN",
    "AUTHENTICATION_BACKENDS",
    "LOGIN_REDIRECT_URL_FAILURE",
)


def bob(*entitlements: str) -> dict:
    return {
        "sub": "248289761001",
        "preferred_username": "bob",
        "email": "bob@physics.example.edu",
        "eduperson_entitlement": list(entitlements),
    }


@pytest.fixture
def configure(monkeypatch):
    """Sets the portal's sign-in settings as read from these variables, routes included."""
    overrides: list[override_settings] = []

    def read(environment: dict[str, str]) -> None:
        read = portal_settings(monkeypatch, environment)
        overrides.append(
            override_settings(**{n: v for n, v in read.items() if n.startswith(SIGN_IN_SETTINGS)})
        )
        overrides[-1].enable()
        reload_routes()

    yield read
    for override in reversed(overrides):
        override.disable()
    reload_routes()


def reload_routes() -> None:
    importlib.reload(portal.urls)  # its /oidc/ routes depend on PORTAL_OIDC
    clear_url_caches()


@pytest.fixture
def provider(configure):
    with Provider() as provider:
        configure(provider.settings() | CLAIMS)
        yield provider


def sign_in(provider: Provider, claims: dict, client: Client | None = None):
    """What a browser does: to the provider, which signs `claims` in at once, and back."""
    client = client or Client()
    provider.user = claims
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302 and start["Location"].startswith(f"{provider.url}/authorize?")
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=5)
    back = at_provider.headers["Location"].removeprefix("http://testserver")
    return client, client.get(back)


def departments_of(user_name: str) -> set[str]:
    return set(Membership.objects.filter(user__username=user_name).values_list("department__slug", flat=True))


def test_off_by_default_there_is_no_way_in_by_it(monkeypatch):
    read = portal_settings(monkeypatch, {})
    assert "relaytests.sso.OIDCBackend" not in read["AUTHENTICATION_BACKENDS"]
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert "Sign in with" not in Client().get(LOGIN).content.decode()


def test_on_without_the_provider_s_endpoints_the_portal_does_not_start(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="PORTAL_OIDC=true needs OIDC_RP_CLIENT_ID"):
        portal_settings(monkeypatch, {"PORTAL_OIDC": "true"})


def test_first_sign_in_creates_the_account_with_the_departments_its_claim_names(provider):
    make_department("Physics"), make_department("Chemistry")
    page = Client().get(LOGIN).content.decode()
    assert "Sign in with the university&#x27;s single sign-on" in page and 'name="password"' in page

    client, response = sign_in(provider, bob(f"{PREFIX}physics", "urn:other:thing", f"{PREFIX}no-such"))

    assert (response.status_code, response["Location"]) == (302, "/")
    user = User.objects.get(pk=client.session["_auth_user_id"])
    assert (user.username, user.email) == ("bob", "bob@physics.example.edu")
    assert not user.has_usable_password() and not user.is_staff
    assert departments_of("bob") == {"physics"}
    assert client.get("/account/tokens/").status_code == 200


def test_who_loses_a_department_or_central_it_loses_it_at_the_next_sign_in(provider):
    make_department("Physics"), make_department("Chemistry")
    sign_in(provider, bob(f"{PREFIX}physics", f"{PREFIX}chemistry", f"{PREFIX}central-it"))
    assert departments_of("bob") == {"physics", "chemistry"}
    assert User.objects.get(username="bob").is_staff

    sign_in(provider, bob(f"{PREFIX}chemistry"))

    assert departments_of("bob") == {"chemistry"}
    assert not User.objects.get(username="bob").is_staff
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    "entitlements, departments",
    [
        (f"{PREFIX}physics", {"physics"}),
        (42, set()),
        ({"physics": True}, set()),
        ([f"{PREFIX}physics", 7], {"physics"}),
    ],
    ids=["one string", "a number", "an object", "a list with a number"],
)
def test_an_entitlement_claim_of_another_shape_signs_in_with_what_it_names(
    provider, entitlements, departments
):
    make_department("Physics")

    _, response = sign_in(provider, bob() | {"eduperson_entitlement": entitlements})

    assert (response.status_code, response["Location"]) == (302, "/")
    assert departments_of("bob") == departments


@pytest.mark.parametrize("fault", ["forged signature", "another client's token", "provider down"])
def test_no_one_is_signed_in_by_a_token_that_does_not_verify_or_a_provider_that_is_down(
    provider, settings, fault
):
    if fault == "forged signature":
        provider.sign_with = new_key()
    elif fault == "another client's token":
        provider.audience = "some-other-app"
    else:
        settings.OIDC_OP_TOKEN_ENDPOINT = f"http://127.0.0.1:{free_port('127.0.0.1')}/token"

    client, response = sign_in(provider, bob())

    assert (response.status_code, response["Location"]) == (302, f"{LOGIN}?sso=failed")
    assert "_auth_user_id" not in client.session
    assert not User.objects.exists()
    assert "Single sign-on did not sign you in" in client.get(response["Location"]).content.decode()


def test_with_local_sign_in_off_the_page_offers_single_sign_on_alone(provider, configure):
    make_user("alice")
    configure(provider.settings() | {"PORTAL_LOCAL_LOGIN": "false"})

    page = Client().get(LOGIN).content.decode()
    refused = Client().post(LOGIN, {"username": "alice", "password": PASSWORD})

    assert "Sign in with" in page and 'name="password"' not in page
    assert refused.status_code == 200  # the form again: no backend takes a password
