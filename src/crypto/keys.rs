//! Signing keys: the algorithms offered, and asymmetric key pairs generated here, stored with
//! their private half sealed, their public JWK and `kid` always derived from that half.

use crate::crypto::random;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// The signing algorithms offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlg {
    /// Ed25519 with a key generated and stored in the database (the default).
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA P-256 with a key generated and stored in the database.
    #[value(name = "ES256")]
    Es256,
    /// HMAC-SHA256 with `LATCHKEY_JWT_SECRET`.
    #[value(name = "HS256")]
    Hs256,
    /// HMAC-SHA512 with `LATCHKEY_JWT_SECRET`.
    #[value(name = "HS512")]
    Hs512,
    /// RSA PKCS#1 v1.5 with SHA-256: ID tokens only (the one algorithm every OpenID Connect
    /// relying party supports), never access tokens.
    #[value(skip)]
    Rs256,
}

impl JwtAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::EdDsa => "EdDSA",
            JwtAlg::Es256 => "ES256",
            JwtAlg::Hs256 => "HS256",
            JwtAlg::Hs512 => "HS512",
            JwtAlg::Rs256 => "RS256",
        }
    }

    /// Whether the key is a shared secret rather than a stored key pair.
    pub fn is_symmetric(self) -> bool {
        matches!(self, JwtAlg::Hs256 | JwtAlg::Hs512)
    }

    pub(super) fn jose(self) -> Algorithm {
        match self {
            JwtAlg::EdDsa => Algorithm::EdDSA,
            JwtAlg::Es256 => Algorithm::ES256,
            JwtAlg::Hs256 => Algorithm::HS256,
            JwtAlg::Hs512 => Algorithm::HS512,
            JwtAlg::Rs256 => Algorithm::RS256,
        }
    }
}

/// An asymmetric key pair as stored: the private key (PKCS#8 DER) and its public JWK.
#[derive(Clone)]
pub struct KeyMaterial {
    /// The key id: the RFC 7638 thumbprint of the public JWK.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// PKCS#8 DER. Never logged.
    pub private_der: Vec<u8>,
    /// The public JWK, as published.
    pub public_jwk: Value,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Generates a fresh key pair for `alg` (asymmetric algorithms only).
    pub fn generate(alg: JwtAlg) -> anyhow::Result<KeyMaterial> {
        let rng = SystemRandom::new();
        let document = match alg {
            // jsonwebtoken reads the v1 (48-byte) PKCS#8 form, not the v2 one.
            JwtAlg::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&rng)
                .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
            JwtAlg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?
                .as_ref()
                .to_vec(),
            JwtAlg::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|pair| pair.as_der())
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?
                .as_ref()
                .to_vec(),
            JwtAlg::Hs256 | JwtAlg::Hs512 => {
                anyhow::bail!("{} uses the shared secret, not a stored key", alg.as_str())
            }
        };
        KeyMaterial::from_private(alg, document)
    }

    /// The key whose private half is `private_der` (PKCS#8): its public JWK and `kid` are derived
    /// from it, never taken from storage, so a public key written into the database by someone
    /// without the secret key cannot stand beside a sealed private one.
    pub fn from_private(alg: JwtAlg, private_der: Vec<u8>) -> anyhow::Result<KeyMaterial> {
        let public_jwk = match alg {
            JwtAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&private_der)
                    .map_err(|e| anyhow::anyhow!("Ed25519 key rejected: {e}"))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                json!({"crv": "Ed25519", "kty": "OKP", "x": x})
            }
            JwtAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &private_der)
                    .map_err(|e| anyhow::anyhow!("P-256 key rejected: {e}"))?;
                let point = pair.public_key().as_ref(); // 0x04 || x || y
                let (x, y) = (
                    URL_SAFE_NO_PAD.encode(&point[1..33]),
                    URL_SAFE_NO_PAD.encode(&point[33..65]),
                );
                json!({"crv": "P-256", "kty": "EC", "x": x, "y": y})
            }
            JwtAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(&private_der)
                    .map_err(|e| anyhow::anyhow!("RSA key rejected: {e}"))?;
                let public = pair.public_key();
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                json!({"e": e, "kty": "RSA", "n": n})
            }
            JwtAlg::Hs256 | JwtAlg::Hs512 => {
                anyhow::bail!("{} uses the shared secret, not a stored key", alg.as_str())
            }
        };
        // serde_json orders object keys, which is exactly the canonical form RFC 7638 hashes.
        let kid = random::sha256_b64(public_jwk.to_string().as_bytes());
        Ok(KeyMaterial {
            kid,
            alg: alg.as_str().to_owned(),
            private_der,
            public_jwk,
        })
    }
}
