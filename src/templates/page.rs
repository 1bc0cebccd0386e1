//! The hosted pages and what each template of theirs is given.

use minijinja::{Value, context};

/// A hosted page to render, with what its template needs.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    /// The button (and, for a self-registered account, the password) that confirms an address.
    ConfirmEmail {
        /// The link's token, posted back by the form.
        token: &'a str,
        /// Whether the form asks for the password.
        needs_password: bool,
        /// What went wrong with the last post: `password_needed` or `password_wrong`.
        error: Option<&'static str>,
    },
    /// The address is confirmed.
    EmailConfirmed,
    /// The new-password form of a reset link.
    ResetPassword {
        /// The link's token, posted back by the form.
        token: &'a str,
        /// Why the last new password was refused (the policy's words).
        error: Option<&'a str>,
    },
    /// The password was reset.
    PasswordChanged,
    /// The form of an invitation's link: the first password.
    AcceptInvitation {
        /// The link's token, posted back by the form.
        token: &'a str,
        /// Why the last password was refused (the policy's words).
        error: Option<&'a str>,
    },
    /// The invitation is accepted: the account is ready.
    InvitationAccepted,
    /// The button that confirms an email change, naming the new address.
    ConfirmEmailChange {
        /// The link's token, posted back by the form.
        token: &'a str,
        /// The new address.
        email: &'a str,
        /// The address became another account's meanwhile: no button, only the reason.
        taken: bool,
    },
    /// The new address is the account's now.
    EmailChanged {
        /// The account's address now.
        email: &'a str,
    },
    /// The button that undoes an email change, naming both addresses.
    RevertEmailChange {
        /// The link's token, posted back by the form.
        token: &'a str,
        /// The address that stays or comes back.
        email: &'a str,
        /// The address asked for.
        new_email: &'a str,
    },
    /// The change is undone; a reset mail is on its way.
    EmailChangeReverted {
        /// The account's address again.
        email: &'a str,
    },
    /// A link's token is unknown, used or expired.
    LinkInvalid {
        /// Which mail the link came from.
        flow: Flow,
    },
    /// A link arrived without its token.
    LinkIncomplete,
    /// A form post over its rate limit.
    TooManyAttempts,
    /// A failure on our side; nothing was changed.
    Error,
    /// The sign-in page (password, passkey, second factor; needs the page script).
    Login,
    /// The page of a mailed sign-in link: a button that spends it (needs the page script).
    EmailLogin {
        /// The link's token, which the button posts.
        token: &'a str,
        /// The address it signs in.
        email: &'a str,
    },
    /// The security settings page (needs the page script).
    Security,
    /// The sign-in of an authorization request: the password, then the second factor.
    OAuthLogin {
        /// The client's name.
        client: &'a str,
        /// The authorization request's query, posted back.
        request: &'a str,
        /// The address to prefill.
        email: &'a str,
        /// What went wrong with the last try.
        error: Option<&'a str>,
        /// Set once the password was right and a second factor is needed.
        mfa_token: Option<&'a str>,
        /// Whether that second factor can be a passkey.
        passkey: bool,
    },
    /// The consent of an authorization request.
    OAuthConsent {
        /// The client's name.
        client: &'a str,
        /// The host its answer goes to.
        destination: &'a str,
        /// The authorization request's query, posted back.
        request: &'a str,
        /// The scopes asked for.
        scopes: &'a [String],
        /// The token tying the form to the browser's sign-in.
        csrf: &'a str,
    },
    /// RP-initiated logout without an address to return to.
    OAuthSignedOut,
    /// RP-initiated logout without a hint: the user confirms.
    OAuthLogout {
        /// The logout request's query, posted back.
        request: &'a str,
        /// The token tying the form to the browser's sign-in.
        csrf: &'a str,
    },
    /// An authorization request that cannot go back to its client.
    OAuthError {
        /// Why.
        reason: &'a str,
    },
}

impl Page<'_> {
    pub(super) fn name(self) -> &'static str {
        match self {
            Page::ConfirmEmail { .. } => "confirm-email",
            Page::EmailConfirmed => "email-confirmed",
            Page::ResetPassword { .. } => "reset-password",
            Page::PasswordChanged => "password-changed",
            Page::LinkInvalid { .. } => "link-invalid",
            Page::AcceptInvitation { .. } => "accept-invitation",
            Page::InvitationAccepted => "invitation-accepted",
            Page::ConfirmEmailChange { .. } => "confirm-email-change",
            Page::EmailChanged { .. } => "email-changed",
            Page::RevertEmailChange { .. } => "revert-email-change",
            Page::EmailChangeReverted { .. } => "email-change-reverted",
            Page::LinkIncomplete => "link-incomplete",
            Page::TooManyAttempts => "too-many-attempts",
            Page::Error => "error",
            Page::Login => "login",
            Page::EmailLogin { .. } => "email-login",
            Page::Security => "security",
            Page::OAuthLogin { .. } => "oauth-login",
            Page::OAuthConsent { .. } => "oauth-consent",
            Page::OAuthError { .. } => "oauth-error",
            Page::OAuthSignedOut => "oauth-signed-out",
            Page::OAuthLogout { .. } => "oauth-logout",
        }
    }

    pub(super) fn context(self) -> Value {
        match self {
            Page::ConfirmEmail {
                token,
                needs_password,
                error,
            } => context! { token, needs_password, error },
            Page::ResetPassword { token, error } => context! { token, error },
            Page::EmailLogin { token, email } => context! { token, email },
            Page::LinkInvalid { flow } => context! { flow => flow.key() },
            Page::AcceptInvitation { token, error } => context! { token, error },
            Page::ConfirmEmailChange {
                token,
                email,
                taken,
            } => context! { token, email, taken },
            Page::EmailChanged { email } | Page::EmailChangeReverted { email } => {
                context! { email }
            }
            Page::RevertEmailChange {
                token,
                email,
                new_email,
            } => context! { token, email, new_email },
            Page::OAuthLogin {
                client,
                request,
                email,
                error,
                mfa_token,
                passkey,
            } => context! { client, request, email, error, mfa_token, passkey },
            Page::OAuthConsent {
                client,
                destination,
                request,
                scopes,
                csrf,
            } => context! { client, destination, request, scopes => scopes.to_vec(), csrf },
            Page::OAuthError { reason } => context! { reason },
            Page::OAuthLogout { request, csrf } => context! { request, csrf },
            Page::EmailConfirmed
            | Page::PasswordChanged
            | Page::InvitationAccepted
            | Page::LinkIncomplete
            | Page::TooManyAttempts
            | Page::Error
            | Page::Login
            | Page::Security
            | Page::OAuthSignedOut => context! {},
        }
    }

    pub(super) fn samples() -> Vec<Page<'static>> {
        let token = "sample";
        vec![
            Page::ConfirmEmail {
                token,
                needs_password: true,
                error: None,
            },
            Page::ConfirmEmail {
                token,
                needs_password: true,
                error: Some("password_wrong"),
            },
            Page::ConfirmEmail {
                token,
                needs_password: false,
                error: Some("password_needed"),
            },
            Page::EmailConfirmed,
            Page::ResetPassword { token, error: None },
            Page::ResetPassword {
                token,
                error: Some("is too common"),
            },
            Page::PasswordChanged,
            Page::LinkInvalid { flow: Flow::Reset },
            Page::LinkInvalid {
                flow: Flow::Confirm,
            },
            Page::LinkInvalid {
                flow: Flow::Invitation,
            },
            Page::LinkInvalid {
                flow: Flow::EmailLogin,
            },
            Page::AcceptInvitation { token, error: None },
            Page::AcceptInvitation {
                token,
                error: Some("is too common"),
            },
            Page::InvitationAccepted,
            Page::ConfirmEmailChange {
                token,
                email: "ada@example.org",
                taken: false,
            },
            Page::ConfirmEmailChange {
                token,
                email: "ada@example.org",
                taken: true,
            },
            Page::EmailChanged {
                email: "ada@example.org",
            },
            Page::RevertEmailChange {
                token,
                email: "ada@example.com",
                new_email: "ada@example.org",
            },
            Page::EmailChangeReverted {
                email: "ada@example.com",
            },
            Page::LinkInvalid {
                flow: Flow::EmailChange,
            },
            Page::LinkInvalid {
                flow: Flow::EmailRevert,
            },
            Page::LinkIncomplete,
            Page::TooManyAttempts,
            Page::Error,
            Page::Login,
            Page::EmailLogin {
                token,
                email: "ada@example.com",
            },
            Page::Security,
            Page::OAuthLogin {
                client: "Dashboard",
                request: "client_id=sample",
                email: "ada@example.com",
                error: Some("invalid_credentials"),
                mfa_token: None,
                passkey: false,
            },
            Page::OAuthLogin {
                client: "Dashboard",
                request: "client_id=sample",
                email: "",
                error: None,
                mfa_token: Some(token),
                passkey: true,
            },
            Page::OAuthConsent {
                client: "Dashboard",
                destination: "dash.example.com",
                request: "client_id=sample",
                scopes: &[],
                csrf: token,
            },
            Page::OAuthError {
                reason: "The client is unknown.",
            },
            Page::OAuthSignedOut,
            Page::OAuthLogout {
                request: "client_id=sample",
                csrf: token,
            },
        ]
    }
}

/// The flow a mailed link belongs to, for the page saying it no longer works.
#[derive(Debug, Clone, Copy)]
pub enum Flow {
    /// Email confirmation.
    Confirm,
    /// Password reset.
    Reset,
    /// Invitation.
    Invitation,
    /// Sign-in by email.
    EmailLogin,
    /// The confirmation of an email change.
    EmailChange,
    /// The undoing of an email change.
    EmailRevert,
}

impl Flow {
    fn key(self) -> &'static str {
        match self {
            Flow::Confirm => "confirm",
            Flow::Reset => "reset",
            Flow::Invitation => "invitation",
            Flow::EmailLogin => "email_login",
            Flow::EmailChange => "email_change",
            Flow::EmailRevert => "email_revert",
        }
    }
}
