//! Cryptography: password hashing on a bounded blocking pool, JWT signing and verification
//! (with a cache of tokens already verified), random opaque tokens and their hashes, and the
//! sealing of secrets at rest.

pub mod id_token;
pub mod jwt;
mod keys;
pub mod otp;
pub mod password;
pub mod random;
pub mod seal;
mod verified;

pub use id_token::IdTokens;
pub use jwt::{AccessClaims, JwtAlg, KeyMaterial, TokenError, Tokens};
pub use password::{HashError, Hasher, HashingConfig, Verified};
pub use seal::Sealer;
