//! ID tokens of the OpenID Connect provider: signed RS256 (what every relying party verifies)
//! with keys of their own, published in the JWKS beside the access-token keys.

use super::keys::KeyMaterial;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

struct IdRing {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
}

/// What an `id_token_hint` of RP-initiated logout says, once its signature is ours.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HintClaims {
    /// The user.
    pub sub: String,
    /// The client it was issued to.
    pub aud: String,
    /// The session it was issued in.
    #[serde(default)]
    pub sid: Option<String>,
}

/// Signs ID tokens. Cheap to clone; keys can be swapped while serving.
#[derive(Clone)]
pub struct IdTokens {
    ring: Arc<RwLock<Arc<IdRing>>>,
}

impl Default for IdTokens {
    fn default() -> IdTokens {
        IdTokens {
            ring: Arc::new(RwLock::new(Arc::new(IdRing {
                signing: None,
                verifying: HashMap::new(),
                jwks: Vec::new(),
            }))),
        }
    }
}

impl IdTokens {
    /// Installs a key set (RS256 only): the first signs, all are published.
    pub fn replace_keys(&self, keys: &[KeyMaterial]) -> anyhow::Result<()> {
        let signing = match keys.first() {
            Some(first) => Some((first.kid.clone(), encoding_key(first)?)),
            None => None,
        };
        let mut verifying = HashMap::new();
        for key in keys {
            let (n, e) = (
                key.public_jwk["n"].as_str().unwrap_or_default(),
                key.public_jwk["e"].as_str().unwrap_or_default(),
            );
            verifying.insert(key.kid.clone(), DecodingKey::from_rsa_components(n, e)?);
        }
        let jwks = keys
            .iter()
            .map(|key| {
                let mut jwk = key.public_jwk.clone();
                jwk["kid"] = Value::String(key.kid.clone());
                jwk["alg"] = Value::String(key.alg.clone());
                jwk["use"] = Value::String("sig".into());
                jwk
            })
            .collect();
        *self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(IdRing {
            signing,
            verifying,
            jwks,
        });
        Ok(())
    }

    /// Whether a key is there to sign with.
    pub fn ready(&self) -> bool {
        self.ring().signing.is_some()
    }

    /// The public keys, as JWKS entries.
    pub fn jwks(&self) -> Vec<Value> {
        self.ring().jwks.clone()
    }

    /// Signs `claims` as an ID token.
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let ring = self.ring();
        let (kid, key) = ring
            .signing
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no ID-token key loaded"))?;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// The claims of an ID token this provider signed for `issuer` (expired or not: a logout
    /// hint may be old), or `None`.
    pub fn verify_hint(&self, token: &str, issuer: &str) -> Option<HintClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let ring = self.ring();
        let key = ring.verifying.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<HintClaims>(token, key, &validation)
            .ok()
            .map(|data| data.claims)
    }

    fn ring(&self) -> Arc<IdRing> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// jsonwebtoken reads RSA private keys as PKCS#1, or as PKCS#8 only from PEM: the stored
/// PKCS#8 is wrapped so that the library does the unwrapping.
fn encoding_key(key: &KeyMaterial) -> anyhow::Result<EncodingKey> {
    let body = STANDARD.encode(&key.private_der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    Ok(EncodingKey::from_rsa_pem(pem.as_bytes())?)
}

/// The `at_hash` (or `c_hash`) of `token` for RS256: the left half of its SHA-256, base64url.
pub fn half_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&digest(&SHA256, token.as_bytes()).as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::JwtAlg;

    #[test]
    fn an_id_token_verifies_with_its_published_key() {
        let key = KeyMaterial::generate(JwtAlg::Rs256).unwrap();
        let tokens = IdTokens::default();
        assert!(!tokens.ready());
        tokens.replace_keys(std::slice::from_ref(&key)).unwrap();
        let token = tokens
            .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000_i64}))
            .unwrap();
        let jwk = &tokens.jwks()[0];
        let decoding = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "ada");
        assert_eq!(jwk["kid"], key.kid.as_str());
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // The example of OpenID Connect Core's test vectors is for another token; this pins the
        // construction: 16 bytes of SHA-256, base64url without padding.
        assert_eq!(half_hash("abc").len(), 22);
        assert_eq!(
            half_hash("abc"),
            URL_SAFE_NO_PAD.encode(&digest(&SHA256, b"abc").as_ref()[..16])
        );
    }
}
