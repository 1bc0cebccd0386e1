//! The mails and what each template of theirs is given.

use minijinja::{Value, context};

/// A mail to render, with what its template needs.
#[derive(Debug, Clone, Copy)]
pub enum Mail<'a> {
    /// "Confirm your email": the link to the confirmation page.
    Verification {
        /// The confirmation link.
        link: &'a str,
    },
    /// "Reset your password", or (suspended) "password sign-in is suspended for today".
    Reset {
        /// The reset page's link.
        link: &'a str,
        /// The 6-digit code.
        code: &'a str,
        /// Sent because password sign-in was suspended for the day.
        suspended: bool,
        /// With a suspension and sign-in by email on: a link that signs in without a password.
        sign_in_link: Option<&'a str>,
    },
    /// "Sign in to …": a link and a 6-digit code.
    EmailLogin {
        /// The sign-in page's link.
        link: &'a str,
        /// The 6-digit code.
        code: &'a str,
        /// How many minutes they work.
        minutes: i64,
    },
    /// "You are invited": the link to the page that sets the first password.
    Invitation {
        /// The invitation page's link.
        link: &'a str,
        /// How many days it works.
        days: i64,
    },
    /// "Confirm your new address": to the new address of an email change.
    EmailChangeConfirm {
        /// The confirmation page's link.
        link: &'a str,
        /// The new address.
        email: &'a str,
    },
    /// "Your address is about to change": to the old address, with the link that undoes it.
    EmailChangeNotice {
        /// The revert page's link.
        link: &'a str,
        /// The address asked for.
        new_email: &'a str,
        /// How many days the link works.
        days: i64,
        /// An admin asked, not the user.
        by_admin: bool,
    },
    /// "The change was undone: choose a new password", with a reset link and code.
    EmailChangeReverted {
        /// The reset page's link.
        link: &'a str,
        /// The 6-digit reset code.
        code: &'a str,
        /// The address the account had before the undo.
        reverted_email: &'a str,
    },
    /// "Your password was changed".
    PasswordChanged,
    /// "The sign-in factors of your account changed".
    FactorsChanged(FactorChange<'a>),
    /// "Someone tried to register with your address" (conceal mode).
    RegistrationAttempt,
}

/// How the second factors of an account changed.
#[derive(Debug, Clone, Copy)]
pub enum FactorChange<'a> {
    /// An authenticator app was confirmed.
    TotpAdded,
    /// The authenticator app was removed.
    TotpRemoved,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRenewed,
    /// An admin removed every factor.
    FactorsReset,
    /// A passkey with this (user-chosen) name was added.
    PasskeyAdded(&'a str),
    /// A passkey was removed.
    PasskeyRemoved,
}

impl FactorChange<'_> {
    fn key(self) -> &'static str {
        match self {
            FactorChange::TotpAdded => "totp_added",
            FactorChange::TotpRemoved => "totp_removed",
            FactorChange::RecoveryCodesRenewed => "recovery_codes_renewed",
            FactorChange::FactorsReset => "factors_reset",
            FactorChange::PasskeyAdded(_) => "passkey_added",
            FactorChange::PasskeyRemoved => "passkey_removed",
        }
    }
}

impl Mail<'_> {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mail::Verification { .. } => "verification",
            Mail::Reset { .. } => "reset",
            Mail::EmailLogin { .. } => "email-login",
            Mail::Invitation { .. } => "invitation",
            Mail::EmailChangeConfirm { .. } => "email-change-confirm",
            Mail::EmailChangeNotice { .. } => "email-change-notice",
            Mail::EmailChangeReverted { .. } => "email-change-reverted",
            Mail::PasswordChanged => "password-changed",
            Mail::FactorsChanged(_) => "factors-changed",
            Mail::RegistrationAttempt => "registration-attempt",
        }
    }

    pub(super) fn context(self) -> Value {
        match self {
            Mail::Verification { link } => context! { link },
            Mail::Reset {
                link,
                code,
                suspended,
                sign_in_link,
            } => context! { link, code, suspended, sign_in_link },
            Mail::EmailLogin {
                link,
                code,
                minutes,
            } => context! { link, code, minutes },
            Mail::Invitation { link, days } => context! { link, days },
            Mail::EmailChangeConfirm { link, email } => context! { link, email },
            Mail::EmailChangeNotice {
                link,
                new_email,
                days,
                by_admin,
            } => context! { link, new_email, days, by_admin },
            Mail::EmailChangeReverted {
                link,
                code,
                reverted_email,
            } => context! { link, code, reverted_email },
            Mail::PasswordChanged | Mail::RegistrationAttempt => context! {},
            Mail::FactorsChanged(change) => {
                let name = match change {
                    FactorChange::PasskeyAdded(name) => name,
                    _ => "",
                };
                context! { change => change.key(), name }
            }
        }
    }

    /// One of each mail, and of each branch a built-in template takes.
    pub(super) fn samples() -> Vec<Mail<'static>> {
        let link = "https://id.example.com/x?token=sample";
        let mut samples = vec![
            Mail::Verification { link },
            Mail::Reset {
                link,
                code: "012345",
                suspended: false,
                sign_in_link: None,
            },
            Mail::Reset {
                link,
                code: "012345",
                suspended: true,
                sign_in_link: None,
            },
            Mail::Reset {
                link,
                code: "012345",
                suspended: true,
                sign_in_link: Some(link),
            },
            Mail::EmailLogin {
                link,
                code: "012345",
                minutes: 15,
            },
            Mail::Invitation { link, days: 7 },
            Mail::EmailChangeConfirm {
                link,
                email: "ada@example.org",
            },
            Mail::EmailChangeNotice {
                link,
                new_email: "ada@example.org",
                days: 7,
                by_admin: false,
            },
            Mail::EmailChangeNotice {
                link,
                new_email: "ada@example.org",
                days: 7,
                by_admin: true,
            },
            Mail::EmailChangeReverted {
                link,
                code: "012345",
                reverted_email: "ada@example.org",
            },
            Mail::PasswordChanged,
            Mail::RegistrationAttempt,
        ];
        samples.extend(
            [
                FactorChange::TotpAdded,
                FactorChange::TotpRemoved,
                FactorChange::RecoveryCodesRenewed,
                FactorChange::FactorsReset,
                FactorChange::PasskeyAdded("Laptop"),
                FactorChange::PasskeyRemoved,
            ]
            .map(Mail::FactorsChanged),
        );
        samples
    }
}
