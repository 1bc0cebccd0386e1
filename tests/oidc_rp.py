"""A relying party written with authlib, for the OpenID Connect provider's browser test.

    oidc_rp.py start STATE_FILE     prints the authorization URL (discovery, PKCE, nonce)
    oidc_rp.py finish STATE_FILE URL  exchanges the code of the callback URL, verifies the ID
                                      token against the JWKS, calls userinfo, refreshes; prints
                                      the ID token's claims as JSON

Settings come from the environment: OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
OIDC_REDIRECT_URI.
"""

import json
import os
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata

ISSUER = os.environ["OIDC_ISSUER"]


def metadata():
    """The discovery document, accepted as is by authlib's validators of both standards."""
    document = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=10).json()
    OpenIDProviderMetadata(document).validate()
    rfc8414 = requests.get(ISSUER + "/.well-known/oauth-authorization-server", timeout=10).json()
    AuthorizationServerMetadata(rfc8414).validate()
    assert document["issuer"] == ISSUER, document["issuer"]
    return document


def session():
    return OAuth2Session(
        os.environ["OIDC_CLIENT_ID"],
        os.environ["OIDC_CLIENT_SECRET"],
        scope="openid email profile offline_access",
        redirect_uri=os.environ["OIDC_REDIRECT_URI"],
        code_challenge_method="S256",
    )


def start(state_file):
    document = metadata()
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = session().create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, nonce=nonce, acr_values="aal2"
    )
    with open(state_file, "w") as out:
        json.dump({"verifier": verifier, "nonce": nonce, "state": state}, out)
    print(url)


def finish(state_file, callback):
    document = metadata()
    with open(state_file) as saved:
        saved = json.load(saved)
    client = session()
    client.state = saved["state"]
    token = client.fetch_token(
        document["token_endpoint"],
        authorization_response=callback,
        code_verifier=saved["verifier"],
        state=saved["state"],
    )
    jwks = JsonWebKey.import_key_set(requests.get(document["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": ISSUER}},
        claims_params={"nonce": saved["nonce"], "client_id": os.environ["OIDC_CLIENT_ID"], "access_token": token["access_token"]},
    )
    claims.validate()
    assert jwt.decode(token["id_token"], jwks).header["alg"] == "RS256"
    userinfo = client.get(document["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"], userinfo
    refreshed = client.refresh_token(document["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    print(json.dumps({"claims": dict(claims), "userinfo": userinfo}))


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(sys.argv[2])
    else:
        finish(sys.argv[2], sys.argv[3])
