"""`Authorization: Bearer rtp_...`: a personal API token acts with its user's rights."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from relaytests import tokens

KEYWORD = "Bearer"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].decode("latin-1").lower() != KEYWORD.lower():
            return None  # no token: the session may still sign the request
        if len(words) != 2:
            raise exceptions.AuthenticationFailed(f"Send one token: Authorization: {KEYWORD} rtp_...")
        try:
            token = tokens.authenticate(words[1].decode("latin-1"))
        except tokens.InvalidToken as refusal:
            raise exceptions.AuthenticationFailed(str(refusal)) from None
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token, so the documentation page can send it."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from the portal's API tokens page.",
        }
