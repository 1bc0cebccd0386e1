//! Hashes brought in by `users import` from other systems: bcrypt or argon2 PHC strings,
//! checked against caps at import and verified (then re-hashed with argon2id) at login.

use argon2::{Params, PasswordHash};

/// The most bytes of a password that bcrypt reads.
const BCRYPT_MAX_BYTES: usize = 72;

/// Whether `secret` is the password of the bcrypt hash `stored`. bcrypt reads only 72 bytes,
/// so a longer password would match on its first 72 alone: it fails instead, after the same
/// work, so its length shows in no timing.
pub(super) fn verify_bcrypt(secret: &str, stored: &str) -> bool {
    let within_reach = secret.len() <= BCRYPT_MAX_BYTES;
    bcrypt::verify(secret, stored).unwrap_or(false) && within_reach
}

/// Whether `hash` is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
pub(super) fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

/// Highest bcrypt cost accepted at import (cost 14 is about a second a login here).
const MAX_BCRYPT_COST: u32 = 14;
/// Highest argon2 memory accepted at import, KiB (256 MiB).
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// Highest argon2 iterations and lanes accepted at import.
const MAX_ARGON2_TIME_OR_LANES: u32 = 16;

/// Checks a password hash brought in by import: bcrypt (`$2a$`, `$2b$`, `$2y$`) or an argon2
/// PHC string, with parameters under safe caps so that no login can be made to cost too much.
pub fn check_imported_hash(hash: &str) -> Result<(), String> {
    if is_bcrypt(hash) {
        let cost: u32 = hash
            .get(4..6)
            .and_then(|c| c.parse().ok())
            .ok_or("bcrypt hash without a cost")?;
        if hash.len() != 60 || hash.as_bytes().get(6) != Some(&b'$') {
            return Err("malformed bcrypt hash".into());
        }
        if !(4..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(format!(
                "bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST}"
            ));
        }
        return Ok(());
    }
    let parsed =
        PasswordHash::new(hash).map_err(|_| "neither a bcrypt hash nor a PHC string".to_owned())?;
    let algorithm = parsed.algorithm.as_str();
    if !["argon2id", "argon2i", "argon2d"].contains(&algorithm) {
        return Err(format!("unsupported algorithm {algorithm}"));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("argon2 hash without salt or output".into());
    }
    let params =
        Params::try_from(&parsed).map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_TIME_OR_LANES
        || params.p_cost() > MAX_ARGON2_TIME_OR_LANES
    {
        return Err(format!(
            "argon2 parameters m={} t={} p={} exceed the caps m<={MAX_ARGON2_MEMORY_KIB} t<={MAX_ARGON2_TIME_OR_LANES} p<={MAX_ARGON2_TIME_OR_LANES}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_hashes_are_checked_against_caps() {
        assert!(check_imported_hash(&bcrypt::hash("x", 4).unwrap()).is_ok());
        assert!(
            check_imported_hash(&bcrypt::hash("x", 4).unwrap().replacen("$04$", "$31$", 1))
                .is_err()
        );
        assert!(check_imported_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g").is_ok());
        assert!(check_imported_hash("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g").is_err());
        assert!(check_imported_hash("$pbkdf2-sha256$29000$c2FsdA$aGFzaA").is_err());
        assert!(check_imported_hash("plaintext").is_err());
    }
}
