//! Cryptography: password hashing on a bounded blocking pool, JWT signing and verification
//! (with a cache of tokens already verified), random opaque tokens and their hashes.

pub mod jwt;
pub mod password;
pub mod random;
mod verified;

pub use jwt::{AccessClaims, JwtAlg, KeyMaterial, TokenError, Tokens};
pub use password::{HashError, Hasher, HashingConfig, Verified};
