//! Access tokens: signing with the configured algorithm and key, verification that refuses
//! every forgery the contract names, and the JWKS that lets gateways verify on their own.

pub use super::keys::{JwtAlg, KeyMaterial};
use crate::crypto::random;
use crate::crypto::verified::VerifiedTokens;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::{Duration, OffsetDateTime};

/// Leeway for `exp` and `nbf`, per the contract, in milliseconds: whole seconds would let a
/// token live up to a second longer than that.
const LEEWAY_MILLIS: i128 = 1_000;
/// The JOSE `typ` of access tokens (RFC 9068): no other JWT, however well signed, passes as one.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token, as issued and as accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// Audience, when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds); a token without it is refused.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Token id.
    pub jti: String,
    /// The session id.
    pub sid: String,
    /// The user's email.
    pub email: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// The user's role.
    pub role: String,
    /// The user's name, when set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// When the user last authenticated (Unix seconds); kept across refreshes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    /// How (RFC 8176 values).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amr: Option<Vec<String>>,
    /// The assurance level: `aal1` or `aal2`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acr: Option<String>,
    /// The OAuth client the token was issued to; none for latchkey's own API.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// The scopes granted to that client.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
}

/// Why a bearer token was refused. Deliberately coarse: every case answers 401 alike.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unparseable, forged, wrong algorithm or key, expired, not yet valid.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// Signing failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The algorithm.
    pub alg: JwtAlg,
    /// `iss` of issued tokens, and the only one accepted.
    pub issuer: String,
    /// `aud`, when configured.
    pub audience: Option<String>,
    /// The other audiences accepted: the resource servers OAuth clients may get tokens for.
    pub resources: Vec<String>,
    /// Lifetime of access tokens.
    pub ttl: Duration,
    /// The verified-token cache's memory budget, bytes.
    pub verify_cache_bytes: u64,
}

struct KeyRing {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
}

/// Issues and verifies access tokens. Cheap to clone; keys can be swapped while serving.
#[derive(Clone)]
pub struct Tokens {
    settings: Arc<TokenSettings>,
    ring: Arc<RwLock<Arc<KeyRing>>>,
    verified: Arc<VerifiedTokens>,
}

impl Tokens {
    /// Tokens signed with a shared secret (HS256/HS512).
    pub fn with_secret(settings: TokenSettings, secret: &[u8]) -> Tokens {
        // The kid names the secret without revealing it.
        let kid = format!(
            "hs-{}",
            &random::sha256_b64(&[b"latchkey-kid:", secret].concat())[..16]
        );
        let ring = KeyRing {
            signing_kid: kid.clone(),
            signing: EncodingKey::from_secret(secret),
            verifying: HashMap::from([(kid, DecodingKey::from_secret(secret))]),
            jwks: Vec::new(),
        };
        Tokens {
            verified: Arc::new(VerifiedTokens::with_budget(settings.verify_cache_bytes)),
            settings: Arc::new(settings),
            ring: Arc::new(RwLock::new(Arc::new(ring))),
        }
    }

    /// Tokens signed with the first of `keys` and verified with any of them.
    pub fn with_keys(settings: TokenSettings, keys: &[KeyMaterial]) -> anyhow::Result<Tokens> {
        let tokens = Tokens {
            verified: Arc::new(VerifiedTokens::with_budget(settings.verify_cache_bytes)),
            settings: Arc::new(settings),
            ring: Arc::new(RwLock::new(Arc::new(KeyRing {
                signing_kid: String::new(),
                signing: EncodingKey::from_secret(&[]),
                verifying: HashMap::new(),
                jwks: Vec::new(),
            }))),
        };
        tokens.replace_keys(keys)?;
        Ok(tokens)
    }

    /// Installs a new key set: the first key signs, all of them verify and are published.
    pub fn replace_keys(&self, keys: &[KeyMaterial]) -> anyhow::Result<()> {
        let Some(first) = keys.first() else {
            anyhow::bail!("no signing key")
        };
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            let (x, y) = (
                key.public_jwk["x"].as_str().unwrap_or_default(),
                key.public_jwk["y"].as_str(),
            );
            let decoding = match (key.alg.as_str(), y) {
                ("EdDSA", _) => DecodingKey::from_ed_components(x)?,
                ("ES256", Some(y)) => DecodingKey::from_ec_components(x, y)?,
                (other, _) => {
                    anyhow::bail!("stored key {} has unsupported algorithm {other}", key.kid)
                }
            };
            verifying.insert(key.kid.clone(), decoding);
            let mut jwk = key.public_jwk.clone();
            jwk["kid"] = Value::String(key.kid.clone());
            jwk["alg"] = Value::String(key.alg.clone());
            jwk["use"] = Value::String("sig".into());
            jwks.push(jwk);
        }
        let signing = match first.alg.as_str() {
            "EdDSA" => EncodingKey::from_ed_der(&first.private_der),
            _ => EncodingKey::from_ec_der(&first.private_der),
        };
        let ring = KeyRing {
            signing_kid: first.kid.clone(),
            signing,
            verifying,
            jwks,
        };
        *self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// How many tokens the verified-token cache holds, and their estimated bytes.
    pub fn cache_usage(&self) -> (usize, u64) {
        self.verified.usage()
    }

    /// The token settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The public keys that verify live tokens, as a JWKS document.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.ring().jwks })
    }

    /// Signs `claims` (whose `iss`, `aud`, times and `jti` this fills in) issued at `now`.
    pub fn issue(
        &self,
        mut claims: AccessClaims,
        now: OffsetDateTime,
    ) -> Result<String, TokenError> {
        let ring = self.ring();
        let issued = now.unix_timestamp();
        claims.iss = self.settings.issuer.clone();
        // A resource indicator (RFC 8707) of an OAuth grant names the audience; else the
        // configured one does.
        claims.aud = claims.aud.take().or_else(|| self.settings.audience.clone());
        claims.iat = issued;
        claims.nbf = Some(issued);
        claims.exp = Some(issued + self.settings.ttl.whole_seconds());
        claims.jti = crate::clock::id_at(now).to_string();
        let mut header = Header::new(self.settings.alg.jose());
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(ring.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &ring.signing)
            .map_err(|e| TokenError::Internal(e.into()))
    }

    /// Verifies a bearer token at `now`: configured algorithm only, a known `kid`, a valid
    /// signature, our issuer (and audience), `exp` present and not past, `nbf` not future.
    pub fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        let ring = self.ring();
        let claims = match self.verified.get(token) {
            // Same bytes, same answer, while the key that verified them is still in the ring.
            Some((kid, claims)) if ring.verifying.contains_key(&*kid) => claims,
            _ => {
                let (kid, claims) = self.verify_signature(&ring, token)?;
                let claims = Arc::new(claims);
                self.verified.insert(token, &kid, &claims);
                claims
            }
        };
        // Time is checked on every use, and here rather than by the library, so it follows the
        // injected clock, to the millisecond.
        let now = now.unix_timestamp_nanos() / 1_000_000;
        let millis = |seconds: i64| i128::from(seconds) * 1_000;
        let exp = claims.exp.ok_or(TokenError::Invalid("no expiry"))?;
        if now >= millis(exp) + LEEWAY_MILLIS {
            return Err(TokenError::Invalid("expired"));
        }
        if claims
            .nbf
            .is_some_and(|nbf| millis(nbf) - LEEWAY_MILLIS > now)
        {
            return Err(TokenError::Invalid("not yet valid"));
        }
        Ok(claims)
    }

    /// Everything but time: type, algorithm, critical headers, key id, signature, issuer,
    /// audience.
    fn verify_signature(
        &self,
        ring: &KeyRing,
        token: &str,
    ) -> Result<(String, AccessClaims), TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed header"))?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::Invalid("not an access token"));
        }
        if header.alg != self.settings.alg.jose() {
            return Err(TokenError::Invalid("unexpected algorithm"));
        }
        if header.crit.is_some() {
            return Err(TokenError::Invalid(
                "critical header extensions are not understood",
            ));
        }
        let kid = header.kid.ok_or(TokenError::Invalid("unknown key id"))?;
        let key = ring
            .verifying
            .get(&kid)
            .ok_or(TokenError::Invalid("unknown key id"))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation())
            .map_err(|_| TokenError::Invalid("signature or claims rejected"))?;
        Ok((kid, data.claims))
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.settings.alg.jose());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[&self.settings.issuer]);
        match &self.settings.audience {
            Some(audience) => {
                let mut accepted = vec![audience.as_str()];
                accepted.extend(self.settings.resources.iter().map(String::as_str));
                validation.set_audience(&accepted);
            }
            None => validation.validate_aud = false,
        }
        validation
    }

    fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(alg: JwtAlg) -> TokenSettings {
        TokenSettings {
            alg,
            issuer: "http://issuer.test".into(),
            audience: None,
            resources: Vec::new(),
            ttl: Duration::minutes(15),
            verify_cache_bytes: 1 << 20,
        }
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: String::new(),
            sub: crate::clock::Clock::System.new_id().to_string(),
            aud: None,
            iat: 0,
            nbf: None,
            exp: None,
            jti: String::new(),
            sid: crate::clock::Clock::System.new_id().to_string(),
            email: "ada@example.com".into(),
            email_verified: true,
            role: "user".into(),
            name: None,
            auth_time: None,
            amr: None,
            acr: None,
            client_id: None,
            scope: None,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn each_algorithm_round_trips() {
        for alg in [JwtAlg::EdDsa, JwtAlg::Es256] {
            let tokens =
                Tokens::with_keys(settings(alg), &[KeyMaterial::generate(alg).unwrap()]).unwrap();
            let token = tokens.issue(claims(), now()).unwrap();
            assert_eq!(
                tokens.verify(&token, now()).unwrap().email,
                "ada@example.com",
                "{alg:?}"
            );
        }
        for alg in [JwtAlg::Hs256, JwtAlg::Hs512] {
            let tokens = Tokens::with_secret(settings(alg), &[7u8; 32]);
            let token = tokens.issue(claims(), now()).unwrap();
            assert!(tokens.verify(&token, now()).is_ok(), "{alg:?}");
        }
    }

    #[test]
    fn expiry_allows_one_second_of_leeway_and_no_more() {
        let tokens = Tokens::with_keys(
            settings(JwtAlg::EdDsa),
            &[KeyMaterial::generate(JwtAlg::EdDsa).unwrap()],
        )
        .unwrap();
        let token = tokens.issue(claims(), now()).unwrap();
        let exp = now() + Duration::seconds(900);
        assert!(
            tokens
                .verify(&token, exp + Duration::milliseconds(999))
                .is_ok()
        );
        assert!(tokens.verify(&token, exp + Duration::seconds(1)).is_err());
    }

    #[test]
    fn not_before_allows_one_second_of_leeway_and_no_more() {
        let tokens = Tokens::with_keys(
            settings(JwtAlg::EdDsa),
            &[KeyMaterial::generate(JwtAlg::EdDsa).unwrap()],
        )
        .unwrap();
        let token = tokens.issue(claims(), now()).unwrap();
        assert!(tokens.verify(&token, now() - Duration::seconds(1)).is_ok());
        assert!(
            tokens
                .verify(&token, now() - Duration::milliseconds(1_001))
                .is_err()
        );
    }

    #[test]
    fn issued_tokens_are_typed_as_access_tokens() {
        let tokens = Tokens::with_secret(settings(JwtAlg::Hs256), &[7u8; 32]);
        let token = tokens.issue(claims(), now()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn a_token_signed_by_a_retired_key_is_refused() {
        let old = KeyMaterial::generate(JwtAlg::EdDsa).unwrap();
        let tokens =
            Tokens::with_keys(settings(JwtAlg::EdDsa), std::slice::from_ref(&old)).unwrap();
        let token = tokens.issue(claims(), now()).unwrap();
        tokens
            .replace_keys(&[KeyMaterial::generate(JwtAlg::EdDsa).unwrap(), old])
            .unwrap();
        assert!(
            tokens.verify(&token, now()).is_ok(),
            "old keys still verify while kept"
        );
        tokens
            .replace_keys(&[KeyMaterial::generate(JwtAlg::EdDsa).unwrap()])
            .unwrap();
        assert!(tokens.verify(&token, now()).is_err());
    }
}
