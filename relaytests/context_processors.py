"""The organisation running the portal, in every page's context (names, policy, hub, contacts), and
the ways to sign in."""

from django.conf import settings

from relaytests.info_views import INFO_PAGES


def organisation(request):
    return {
        "org": {
            "name": settings.PORTAL_ORG_NAME,
            "policy_url": settings.PORTAL_POLICY_URL,
            "relay_hub": settings.PORTAL_RELAY_HUB,
            "help_contact": settings.PORTAL_HELP_CONTACT,
            "help_url": settings.PORTAL_HELP_URL,
        },
        "info_pages": INFO_PAGES,
        "sign_in": {
            "oidc_label": settings.PORTAL_OIDC_LABEL if settings.PORTAL_OIDC else "",
            "local": settings.PORTAL_LOCAL_LOGIN,
        },
    }
