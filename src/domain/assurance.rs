//! How strongly a session's holder was authenticated, and when: what access tokens state as
//! `auth_time`, `amr` (RFC 8176) and `acr`, and what step-up checks compare against.

use time::OffsetDateTime;

/// A way the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A password (`pwd`).
    Password,
    /// A one-time code: TOTP or a recovery code (`otp`).
    OneTimeCode,
    /// A WebAuthn credential (`hwk`).
    HardwareKey,
    /// A link or code mailed to the address (`email`).
    Email,
    /// The authenticator verified its user (PIN or biometric) for a WebAuthn credential: a
    /// second factor inside the key, so a passkey alone is two. Not an RFC 8176 value: `amr`
    /// leaves it out and says `mfa` instead.
    UserVerified,
}

impl AuthMethod {
    /// The RFC 8176 value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::OneTimeCode => "otp",
            AuthMethod::HardwareKey => "hwk",
            AuthMethod::Email => "email",
            AuthMethod::UserVerified => "uv",
        }
    }

    fn parse(raw: &str) -> Option<AuthMethod> {
        [
            AuthMethod::Password,
            AuthMethod::OneTimeCode,
            AuthMethod::HardwareKey,
            AuthMethod::Email,
            AuthMethod::UserVerified,
        ]
        .into_iter()
        .find(|method| method.as_str() == raw)
    }
}

/// An authentication assurance level (NIST 800-63B), as `acr` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acr {
    /// One factor.
    Aal1,
    /// Two factors.
    Aal2,
}

impl Acr {
    /// The `acr` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Aal1 => "aal1",
            Acr::Aal2 => "aal2",
        }
    }

    /// Parses `aal1` or `aal2`.
    pub fn parse(raw: &str) -> Option<Acr> {
        match raw {
            "aal1" => Some(Acr::Aal1),
            "aal2" => Some(Acr::Aal2),
            _ => None,
        }
    }
}

/// When and how a session's holder last authenticated; a refresh keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    /// When the user last authenticated.
    pub auth_time: OffsetDateTime,
    /// The methods used, each once.
    pub methods: Vec<AuthMethod>,
}

impl Assurance {
    /// A sign-in with a password alone at `at`.
    pub fn password(at: OffsetDateTime) -> Assurance {
        Assurance {
            auth_time: at,
            methods: vec![AuthMethod::Password],
        }
    }

    /// The level: two distinct methods are two factors.
    pub fn acr(&self) -> Acr {
        if self.methods.len() >= 2 {
            Acr::Aal2
        } else {
            Acr::Aal1
        }
    }

    /// A sign-in with `methods` at `at`, each method counted once.
    pub fn of(at: OffsetDateTime, methods: &[AuthMethod]) -> Assurance {
        let mut assurance = Assurance {
            auth_time: at,
            methods: Vec::new(),
        };
        assurance.add(methods);
        assurance
    }

    /// Adds methods proven in the same session (a second factor, a step-up).
    pub fn add(&mut self, methods: &[AuthMethod]) {
        for method in methods {
            if !self.methods.contains(method) {
                self.methods.push(*method);
            }
        }
    }

    /// The `amr` claim: the methods, and `mfa` when there were two factors.
    pub fn amr(&self) -> Vec<String> {
        let mut amr: Vec<String> = self
            .methods
            .iter()
            .filter(|m| **m != AuthMethod::UserVerified)
            .map(|m| m.as_str().to_owned())
            .collect();
        if self.acr() == Acr::Aal2 {
            amr.push("mfa".to_owned());
        }
        amr
    }

    /// The methods as stored: their RFC 8176 values, comma-separated.
    pub fn stored_methods(&self) -> String {
        let names: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        names.join(",")
    }

    /// Reads what [`Assurance::stored_methods`] wrote; an unknown value is left out, so a
    /// method only a newer version knows never raises the level here.
    pub fn from_stored(auth_time: OffsetDateTime, methods: &str) -> Assurance {
        let mut parsed = Vec::new();
        for method in methods.split(',').filter_map(AuthMethod::parse) {
            if !parsed.contains(&method) {
                parsed.push(method);
            }
        }
        Assurance {
            auth_time,
            methods: parsed,
        }
    }
}

/// What a route demands of a token's authentication (RFC 9470): a level, a most age, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// The least level.
    pub acr: Option<Acr>,
    /// The most seconds since the user authenticated.
    pub max_age: Option<i64>,
}

impl Demand {
    /// Whether a token saying `acr` (absent: `aal1`) and `auth_time` (Unix seconds; absent
    /// fails any `max_age`) satisfies it at `now`.
    pub fn met_by(&self, acr: Option<Acr>, auth_time: Option<i64>, now: OffsetDateTime) -> bool {
        let level = self
            .acr
            .is_none_or(|demanded| acr.unwrap_or(Acr::Aal1) >= demanded);
        let fresh = self
            .max_age
            .is_none_or(|max_age| auth_time.is_some_and(|at| now.unix_timestamp() - at <= max_age));
        level && fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_aal1_and_a_second_factor_makes_aal2_with_mfa() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let one = Assurance::password(at);
        assert_eq!((one.acr(), one.amr()), (Acr::Aal1, vec!["pwd".to_owned()]));
        let two = Assurance::from_stored(at, "pwd,otp,otp,future");
        assert_eq!(two.acr(), Acr::Aal2);
        assert_eq!(two.amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(two.stored_methods(), "pwd,otp");
        assert!(Acr::Aal2 > Acr::Aal1 && Acr::parse("aal3").is_none());
        let passkey = Assurance::of(at, &[AuthMethod::HardwareKey, AuthMethod::UserVerified]);
        assert_eq!(
            passkey.acr(),
            Acr::Aal2,
            "a user-verified passkey is two factors"
        );
        assert_eq!(passkey.amr(), ["hwk", "mfa"]);
        assert_eq!(passkey.stored_methods(), "hwk,uv");
    }

    #[test]
    fn a_demand_is_met_only_by_a_strong_and_fresh_enough_authentication() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let at = now.unix_timestamp();
        let aal2 = Demand {
            acr: Some(Acr::Aal2),
            max_age: None,
        };
        assert!(aal2.met_by(Some(Acr::Aal2), Some(at), now));
        assert!(!aal2.met_by(Some(Acr::Aal1), Some(at), now));
        assert!(!aal2.met_by(None, Some(at), now), "no acr is aal1");
        let fresh = Demand {
            acr: None,
            max_age: Some(300),
        };
        assert!(fresh.met_by(None, Some(at - 300), now));
        assert!(!fresh.met_by(None, Some(at - 301), now));
        assert!(
            !fresh.met_by(Some(Acr::Aal2), None, now),
            "no auth_time is never fresh"
        );
        assert!(Demand::default().met_by(None, None, now));
    }
}
