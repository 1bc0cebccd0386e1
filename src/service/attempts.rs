//! The failure accounting of every password check (login, change, deletion, confirmation):
//! counted before the hash is checked, slowed per client network, capped per account and day.

use super::{ClientInfo, Fault};
use crate::domain::password::Candidate;
use crate::domain::{Email, User};
use crate::state::AppState;
use crate::store::{AttemptCounts, AttemptGate};
use time::OffsetDateTime;

/// The outcome of one password check.
pub(crate) enum PasswordCheck {
    /// The password is right.
    Matches {
        /// The password, normalised, for a re-hash.
        candidate: Candidate,
        /// The stored hash has outdated parameters.
        needs_rehash: bool,
        /// The attempt, still counted as a failure until the caller settles it (a login, in
        /// the transaction that opens the session; the others with [`settle`]).
        attempt: Option<Attempt>,
    },
    /// Wrong password, unknown account, or a password that cannot be right.
    Wrong,
    /// This client network must wait before its next try.
    Throttled,
    /// The account reached the day's cap of failures: no password opens it today.
    Suspended,
}

/// Every password check (login, change, deletion, confirmation) goes through here: the attempt
/// is counted for the address and the client network before the hash is checked, so parallel
/// guesses get no more tries than sequential ones; a network past its free failures waits, and
/// only it; an address past the day's cap across networks is suspended from password sign-in
/// and its owner mailed a reset link (through the queued requests, so that every address costs
/// the same writes). Refused attempts cost the same hashing work and answer like a wrong
/// password. `email` names the counters (an invalid address has none: it can match no account),
/// `owner` is the account, if any; `opens` is false when even the right password must count as
/// a failure (in conceal mode, an unverified account's).
pub(crate) async fn check_password(
    app: &AppState,
    email: Option<&Email>,
    owner: Option<&User>,
    stored_hash: Option<&str>,
    password: &str,
    client: &ClientInfo,
    opens: bool,
) -> Result<PasswordCheck, Fault> {
    // A password longer than any valid one cannot match: refused before any work, alike for
    // every address.
    let Some(candidate) = Candidate::new(password) else {
        return Ok(PasswordCheck::Wrong);
    };
    let network = client
        .ip
        .as_deref()
        .map_or_else(|| "unknown".to_owned(), crate::domain::client_network);
    let subject = email.map(|email| app.code_key.subject(email));
    let now = app.clock.now();
    let (gate, daily_failures) = match &subject {
        Some(subject) => {
            app.store
                .begin_password_attempt(subject, &network, now, &|counts| gate(counts, now))
                .await?
        }
        None => (AttemptGate::Open, 0),
    };
    let verified = match app.hasher.verify(&candidate, stored_hash).await {
        Ok(verified) => verified,
        Err(error) => {
            // Not checked (the hashing queue is full): it must not count against the owner.
            if let (Some(subject), AttemptGate::Open) = (&subject, gate) {
                app.store
                    .uncount_password_attempt(subject, &network, app.clock.now())
                    .await?;
            }
            return Err(error.into());
        }
    };
    let suspended = match gate {
        AttemptGate::Throttled => return Ok(PasswordCheck::Throttled),
        AttemptGate::Suspended => true,
        AttemptGate::Open if verified.matches && opens && owner.is_some() => {
            return Ok(PasswordCheck::Matches {
                candidate,
                needs_rehash: verified.needs_rehash,
                attempt: subject.map(|subject| Attempt { subject, network }),
            });
        }
        AttemptGate::Open => daily_failures >= MAX_DAILY_FAILURES,
    };
    if suspended && let Some(email) = email {
        // Queued alike for every address; the owner, if any, gets at most one such mail a day.
        super::mail_requests::queue_request(app, email, super::mail_requests::LOGIN_SUSPENDED)
            .await?;
    }
    Ok(match gate {
        AttemptGate::Suspended => PasswordCheck::Suspended,
        // The right password that must not open (conceal mode): it stays counted.
        _ if verified.matches && owner.is_some() => PasswordCheck::Matches {
            candidate,
            needs_rehash: verified.needs_rehash,
            attempt: None,
        },
        _ => PasswordCheck::Wrong,
    })
}

/// Counts a second-factor check of `email`'s account from `client` as a failure before it is
/// made, like a password check: wrong codes share the account's budget with wrong passwords.
/// `None` when the account or network may not try now; else the attempt, for [`settle`] once
/// the code turns out right.
pub(crate) async fn count_second_factor(
    app: &AppState,
    email: &Email,
    client: &ClientInfo,
) -> Result<Option<Attempt>, Fault> {
    let network = client
        .ip
        .as_deref()
        .map_or_else(|| "unknown".to_owned(), crate::domain::client_network);
    let subject = app.code_key.subject(email);
    let now = app.clock.now();
    let (gate, _) = app
        .store
        .begin_password_attempt(&subject, &network, now, &|counts| gate(counts, now))
        .await?;
    Ok(matches!(gate, AttemptGate::Open).then_some(Attempt { subject, network }))
}

/// A counted password check that turned out right: whose counters, from which network.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    subject: String,
    network: String,
}

impl Attempt {
    /// Its counters' keys: the address's keyed hash and the client network.
    pub(crate) fn counters(&self) -> (&str, &str) {
        (&self.subject, &self.network)
    }
}

/// A right password no longer counts as a failure, and its network's failures are forgotten.
pub(crate) async fn settle(app: &AppState, attempt: Option<&Attempt>) -> Result<(), Fault> {
    if let Some(attempt) = attempt {
        app.store
            .password_attempt_passed(&attempt.subject, &attempt.network, app.clock.now())
            .await?;
    }
    Ok(())
}

/// A right password that does not open the account by itself (a second factor follows): it is
/// no longer counted as a failure, but the network's earlier failures stay until the login
/// completes, or else each new password step would buy a fresh round of code guesses.
pub(crate) async fn uncount(app: &AppState, attempt: Option<&Attempt>) -> Result<(), Fault> {
    if let Some(attempt) = attempt {
        app.store
            .uncount_password_attempt(&attempt.subject, &attempt.network, app.clock.now())
            .await?;
    }
    Ok(())
}

/// Whether a password check may run, from the counters before it.
fn gate(counts: &AttemptCounts, now: OffsetDateTime) -> AttemptGate {
    if counts.daily_failures >= MAX_DAILY_FAILURES {
        AttemptGate::Suspended
    } else if is_throttled(counts.network_failures, counts.network_last_failed_at, now) {
        AttemptGate::Throttled
    } else {
        AttemptGate::Open
    }
}

/// Failed password checks a client network may make for one account before it slows down.
const FREE_FAILURES: i64 = 10;
/// The longest wait between two tries once a network is slowed down.
const MAX_DELAY_SECONDS: i64 = 3_600;
/// NIST 800-63B's cap, per account and day across all networks: then password sign-in is
/// suspended for the rest of the day and the owner is mailed a reset link that works anyway.
pub(crate) const MAX_DAILY_FAILURES: i64 = 100;

/// Whether a network with `failures` failures for an account, the last at `last`, must wait:
/// from the tenth failure, 1 s, then doubling, at most an hour.
fn is_throttled(
    failures: i64,
    last: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> bool {
    if failures < FREE_FAILURES {
        return false;
    }
    let exponent = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(12);
    let delay = time::Duration::seconds((1_i64 << exponent).min(MAX_DELAY_SECONDS));
    last.is_some_and(|last| now < last + delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn the_delay_grows_from_the_tenth_failure_and_is_capped() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert!(!is_throttled(9, Some(now), now), "nine failures are free");
        assert!(is_throttled(
            10,
            Some(now),
            now + Duration::milliseconds(900)
        ));
        assert!(!is_throttled(10, Some(now), now + Duration::seconds(1)));
        assert!(is_throttled(13, Some(now), now + Duration::seconds(7)));
        assert!(!is_throttled(13, Some(now), now + Duration::seconds(8)));
        assert!(
            !is_throttled(60, Some(now), now + Duration::hours(1)),
            "capped at an hour"
        );
    }
}
