"""A small OpenID Connect provider on loopback for the sign-in tests: authorization code flow with
PKCE, RS256 ID tokens, a JWKS and a userinfo endpoint.

Who signs in next is set by the test (`provider.user = {...claims}`), as if they had typed their
password at the provider. `sign_with` swaps the signing key for one the JWKS does not list, as a
forger would, and `audience` makes the ID token another client's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "relay-portal"
CLIENT_SECRET = "s3cret-for-tests"
KEY_ID = "test-key"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    def __init__(self) -> None:
        self.key = new_key()
        self.sign_with = self.key
        self.audience = CLIENT_ID
        self.user: dict = {}
        self.grants: dict[str, dict] = {}  # code -> what the authorization request asked
        self.tokens: dict[str, dict] = {}  # access token -> claims
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Provider:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def settings(self) -> dict[str, str]:
        """The portal's environment for this provider."""
        return {
            "PORTAL_OIDC": "true",
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
        }

    # ---- the endpoints ----

    def authorize(self, query: dict[str, str]) -> tuple[int, dict]:
        """Signs in `self.user` at once and sends the browser back with a code."""
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.grants[code] = query | {"claims": dict(self.user)}
        back = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": back}

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        grant = self.grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant["redirect_uri"]
            or pkce_challenge(form.get("code_verifier", "")) != grant.get("code_challenge")
        ):
            return 400, {"error": "invalid_grant"}
        claims = grant["claims"]
        access = secrets.token_urlsafe(16)
        self.tokens[access] = claims
        now = int(time.time())
        id_claims = {
            "iss": self.url,
            "aud": self.audience,
            "sub": claims["sub"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant.get("nonce"),
        }
        id_token = jwt.encode(id_claims, self.sign_with, algorithm="RS256", headers={"kid": KEY_ID})
        return 200, {"access_token": access, "token_type": "Bearer", "id_token": id_token, "expires_in": 300}

    def userinfo(self, authorization: str) -> tuple[int, dict]:
        claims = self.tokens.get(authorization.removeprefix("Bearer "))
        return (200, claims) if claims else (401, {"error": "invalid_token"})

    def jwks(self) -> tuple[int, dict]:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return 200, {"keys": [key | {"kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    self.answer(*provider.authorize(query))
                elif url.path == "/userinfo":
                    self.answer(*provider.userinfo(self.headers.get("Authorization", "")))
                elif url.path == "/jwks":
                    self.answer(*provider.jwks())
                else:
                    self.answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {name: values[0] for name, values in parse_qs(body).items()}
                self.answer(*(provider.token(form) if self.path == "/token" else (404, {})))

            def answer(self, status: int, content: dict) -> None:
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", content["Location"])
                    body = b""
                else:
                    body = json.dumps(content).encode()
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: pytest shows failures, not every request
                pass

        return Handler


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
