//! Every mail and hosted page, rendered by minijinja from templates that are built into the
//! binary, in English and German. A file under `LATCHKEY_TEMPLATES_DIR` with a built-in
//! template's name replaces it. Values are escaped in every `.html` template. An override is
//! checked at start-up: it must have a built-in's name, parse, and render with that template's
//! variables. A broken one stops the service instead of sending a blank mail, and should an
//! override still fail on some value at run time, the built-in twin renders instead.

use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::path::{Path, PathBuf};

/// A language the templates are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English, the default.
    English,
    /// German.
    German,
}

impl Language {
    /// Every shipped language.
    pub const ALL: [Language; 2] = [Language::English, Language::German];

    /// The BCP 47 primary tag, which is also the folder of the language's templates.
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::German => "de",
        }
    }

    /// The shipped language of a BCP 47 tag (`de`, `de-AT`), if there is one.
    pub fn of_tag(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Language::ALL
            .into_iter()
            .find(|language| language.tag().eq_ignore_ascii_case(primary))
    }

    /// The shipped language an `Accept-Language` header prefers most (RFC 9110 weights), if
    /// it names one. Only the first 16 entries are read, so a huge header costs nothing more.
    pub fn preferred(accept_language: &str) -> Option<Language> {
        let mut best: Option<(u16, Language)> = None;
        for entry in accept_language.split(',').take(16) {
            let mut parts = entry.split(';');
            let Some(language) = parts.next().and_then(Language::of_tag) else {
                continue;
            };
            let weight = parts
                .find_map(|part| part.trim().strip_prefix("q="))
                .map_or(Some(1000), quality);
            if let Some(weight) = weight.filter(|w| *w > 0)
                && best.is_none_or(|(held, _)| weight > held)
            {
                best = Some((weight, language));
            }
        }
        best.map(|(_, language)| language)
    }
}

/// A `q` value in thousandths (`0.8` → 800); `None` when malformed.
fn quality(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// What a template may say about the service.
#[derive(Debug, Clone)]
pub struct Brand {
    /// `LATCHKEY_PRODUCT_NAME`.
    pub product: String,
    /// `LATCHKEY_PUBLIC_URL`, without a trailing slash: every mailed link starts with it.
    pub public_url: String,
    /// The base path the pages are served under (their forms post there).
    pub base_path: String,
    /// The shortest new password, for the reset form.
    pub password_min_length: usize,
}

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
    fn name(self) -> &'static str {
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

    fn context(self) -> Value {
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
    fn samples() -> Vec<Mail<'static>> {
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
}

impl Page<'_> {
    fn name(self) -> &'static str {
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
        }
    }

    fn context(self) -> Value {
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
            Page::EmailConfirmed
            | Page::PasswordChanged
            | Page::InvitationAccepted
            | Page::LinkIncomplete
            | Page::TooManyAttempts
            | Page::Error
            | Page::Login
            | Page::Security => context! {},
        }
    }

    fn samples() -> Vec<Page<'static>> {
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

/// A rendered mail.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Why the templates cannot be used, or one could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// `LATCHKEY_TEMPLATES_DIR` cannot be read.
    #[error("cannot read LATCHKEY_TEMPLATES_DIR {}: {error}", .path.display())]
    Directory {
        /// The directory or file that could not be read.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file there has no built-in twin: a typo would otherwise be ignored in silence.
    #[error(
        "LATCHKEY_TEMPLATES_DIR holds {0}, which is not a template (`latchkey templates list` names them)"
    )]
    Unknown(String),
    /// A template does not parse or does not render.
    #[error("template {name}: {source}")]
    Broken {
        /// The template's name.
        name: String,
        /// What minijinja reported.
        source: minijinja::Error,
    },
}

/// The page stylesheet's name: the Content-Security-Policy allows exactly its text.
const STYLESHEET: &str = "layout/page.css";

/// The loaded templates, checked; shared behind an `Arc`.
#[derive(Debug)]
pub struct Templates {
    /// The built-ins with the operator's overrides.
    env: Environment<'static>,
    /// The built-ins alone.
    fallback: Environment<'static>,
    brand: Brand,
    stylesheet: String,
}

impl Templates {
    /// The built-in templates, each replaced by its file in `dir` when there is one; every
    /// template is rendered once with sample values before the service starts.
    pub fn load(dir: Option<&Path>, brand: Brand) -> Result<Templates, TemplateError> {
        let builtin: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
            .collect();
        let mut sources = builtin.clone();
        if let Some(dir) = dir {
            for (name, source) in overrides(dir)? {
                let Some(slot) = sources.iter_mut().find(|(known, _)| *known == name) else {
                    return Err(TemplateError::Unknown(name));
                };
                slot.1 = source;
            }
        }
        let env = environment(sources)?;
        let stylesheet = render(&env, STYLESHEET, context! {})?;
        let templates = Templates {
            env,
            fallback: environment(builtin)?,
            brand,
            stylesheet: stylesheet.trim().to_owned(),
        };
        for env in [&templates.env, &templates.fallback] {
            for language in Language::ALL {
                for mail in Mail::samples() {
                    templates.try_mail(env, language, mail)?;
                }
                for page in Page::samples() {
                    templates.try_page(env, language, page)?;
                }
            }
        }
        Ok(templates)
    }

    /// `mail` in `language`: its subject (one line), text and HTML.
    pub fn mail(&self, language: Language, mail: Mail<'_>) -> Rendered {
        self.try_mail(&self.env, language, mail)
            .or_else(|error| {
                tracing::error!(%error, "a mail template failed; its built-in twin was used");
                self.try_mail(&self.fallback, language, mail)
            })
            .expect("the built-in templates render every mail (checked at start-up)")
    }

    /// `page` in `language`, a whole HTML document.
    pub fn page(&self, language: Language, page: Page<'_>) -> String {
        self.try_page(&self.env, language, page)
            .or_else(|error| {
                tracing::error!(%error, "a page template failed; its built-in twin was used");
                self.try_page(&self.fallback, language, page)
            })
            .expect("the built-in templates render every page (checked at start-up)")
    }

    fn try_mail(
        &self,
        env: &Environment<'_>,
        language: Language,
        mail: Mail<'_>,
    ) -> Result<Rendered, TemplateError> {
        let name = format!("{}/mail/{}", language.tag(), mail.name());
        let values = context! {
            ..mail.context(),
            ..context! { product => &self.brand.product, lang => language.tag() }
        };
        let subject = render(env, &format!("{name}.subject.txt"), values.clone())?;
        Ok(Rendered {
            // One line: a header cannot hold more.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(env, &format!("{name}.txt"), values.clone())?,
            html: render(env, &format!("{name}.html"), values)?,
        })
    }

    fn try_page(
        &self,
        env: &Environment<'_>,
        language: Language,
        page: Page<'_>,
    ) -> Result<String, TemplateError> {
        let name = format!("{}/pages/{}.html", language.tag(), page.name());
        let values = context! {
            ..page.context(),
            ..context! {
                product => &self.brand.product,
                lang => language.tag(),
                base_path => &self.brand.base_path,
                min_length => self.brand.password_min_length,
                // The operator's own stylesheet, allowed by its hash: not escaped.
                style => Value::from_safe_string(self.stylesheet.clone()),
            }
        };
        render(env, &name, values)
    }

    /// The text of the pages' stylesheet, which the Content-Security-Policy allows by hash.
    pub fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    /// The public URL mailed links start with.
    pub fn public_url(&self) -> &str {
        &self.brand.public_url
    }
}

/// An environment of `sources`: unknown variables are errors (never an empty string), and a
/// text keeps its final line break.
fn environment(sources: Vec<(String, String)>) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    for (name, source) in sources {
        env.add_template_owned(name.clone(), source)
            .map_err(|source| TemplateError::Broken { name, source })?;
    }
    Ok(env)
}

fn render(env: &Environment<'_>, name: &str, values: Value) -> Result<String, TemplateError> {
    env.get_template(name)
        .and_then(|template| template.render(values))
        .map_err(|source| TemplateError::Broken {
            name: name.to_owned(),
            source,
        })
}

/// Every file under `dir`, by its path relative to `dir` with `/` separators.
fn overrides(dir: &Path) -> Result<Vec<(String, String)>, TemplateError> {
    let unreadable = |error| TemplateError::Directory {
        path: dir.to_owned(),
        error,
    };
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let source = std::fs::read_to_string(&path).map_err(unreadable)?;
            found.push((name, source));
        }
    }
    Ok(found)
}

/// The built-in templates' names, in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// The built-in text of template `name`.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, source)| *source)
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $name)))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin![
    "layout/mail.html",
    "layout/page.html",
    "layout/page.css",
    "en/mail/verification.subject.txt",
    "en/mail/verification.txt",
    "en/mail/verification.html",
    "en/mail/reset.subject.txt",
    "en/mail/reset.txt",
    "en/mail/reset.html",
    "en/mail/email-login.subject.txt",
    "en/mail/email-login.txt",
    "en/mail/email-login.html",
    "en/mail/invitation.subject.txt",
    "en/mail/invitation.txt",
    "en/mail/invitation.html",
    "en/mail/email-change-confirm.subject.txt",
    "en/mail/email-change-confirm.txt",
    "en/mail/email-change-confirm.html",
    "en/mail/email-change-notice.subject.txt",
    "en/mail/email-change-notice.txt",
    "en/mail/email-change-notice.html",
    "en/mail/email-change-reverted.subject.txt",
    "en/mail/email-change-reverted.txt",
    "en/mail/email-change-reverted.html",
    "en/mail/password-changed.subject.txt",
    "en/mail/password-changed.txt",
    "en/mail/password-changed.html",
    "en/mail/factors-changed.subject.txt",
    "en/mail/factors-changed.txt",
    "en/mail/factors-changed.html",
    "en/mail/registration-attempt.subject.txt",
    "en/mail/registration-attempt.txt",
    "en/mail/registration-attempt.html",
    "en/pages/confirm-email.html",
    "en/pages/email-confirmed.html",
    "en/pages/reset-password.html",
    "en/pages/password-changed.html",
    "en/pages/accept-invitation.html",
    "en/pages/invitation-accepted.html",
    "en/pages/confirm-email-change.html",
    "en/pages/email-changed.html",
    "en/pages/revert-email-change.html",
    "en/pages/email-change-reverted.html",
    "en/pages/link-invalid.html",
    "en/pages/link-incomplete.html",
    "en/pages/too-many-attempts.html",
    "en/pages/error.html",
    "en/pages/login.html",
    "en/pages/email-login.html",
    "en/pages/security.html",
    "de/mail/verification.subject.txt",
    "de/mail/verification.txt",
    "de/mail/verification.html",
    "de/mail/reset.subject.txt",
    "de/mail/reset.txt",
    "de/mail/reset.html",
    "de/mail/email-login.subject.txt",
    "de/mail/email-login.txt",
    "de/mail/email-login.html",
    "de/mail/invitation.subject.txt",
    "de/mail/invitation.txt",
    "de/mail/invitation.html",
    "de/mail/email-change-confirm.subject.txt",
    "de/mail/email-change-confirm.txt",
    "de/mail/email-change-confirm.html",
    "de/mail/email-change-notice.subject.txt",
    "de/mail/email-change-notice.txt",
    "de/mail/email-change-notice.html",
    "de/mail/email-change-reverted.subject.txt",
    "de/mail/email-change-reverted.txt",
    "de/mail/email-change-reverted.html",
    "de/mail/password-changed.subject.txt",
    "de/mail/password-changed.txt",
    "de/mail/password-changed.html",
    "de/mail/factors-changed.subject.txt",
    "de/mail/factors-changed.txt",
    "de/mail/factors-changed.html",
    "de/mail/registration-attempt.subject.txt",
    "de/mail/registration-attempt.txt",
    "de/mail/registration-attempt.html",
    "de/pages/confirm-email.html",
    "de/pages/email-confirmed.html",
    "de/pages/reset-password.html",
    "de/pages/password-changed.html",
    "de/pages/accept-invitation.html",
    "de/pages/invitation-accepted.html",
    "de/pages/confirm-email-change.html",
    "de/pages/email-changed.html",
    "de/pages/revert-email-change.html",
    "de/pages/email-change-reverted.html",
    "de/pages/link-invalid.html",
    "de/pages/link-incomplete.html",
    "de/pages/too-many-attempts.html",
    "de/pages/error.html",
    "de/pages/login.html",
    "de/pages/email-login.html",
    "de/pages/security.html",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Brand {
        Brand {
            product: "Acme <Login>".into(),
            public_url: "https://id.example.com/api".into(),
            base_path: "/api".into(),
            password_min_length: 12,
        }
    }

    #[test]
    fn every_built_in_template_has_a_file_in_each_language() {
        let listed: Vec<&str> = names().collect();
        for language in ["en", "de"] {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(language);
            for (name, _) in overrides(&root).unwrap() {
                let name = format!("{language}/{name}");
                assert!(listed.contains(&name.as_str()), "{name} is not built in");
            }
        }
        let english = listed.iter().filter(|n| n.starts_with("en/")).count();
        let german = listed.iter().filter(|n| n.starts_with("de/")).count();
        assert_eq!(english, german);
    }

    #[test]
    fn values_are_escaped_in_html_and_left_alone_in_text() {
        let templates = Templates::load(None, brand()).unwrap();
        let mail = templates.mail(
            Language::English,
            Mail::FactorsChanged(FactorChange::PasskeyAdded("<img src=x>")),
        );
        assert!(mail.html.contains("&lt;img src=x&gt;") && !mail.html.contains("<img"));
        assert!(mail.html.contains("Acme &lt;Login&gt;") && !mail.html.contains("<Login>"));
        assert!(mail.text.contains("\"<img src=x>\""));
        assert!(mail.subject.contains("Acme <Login>"));
        assert!(!mail.subject.contains('\n'));
    }

    #[test]
    fn links_and_codes_reach_both_parts() {
        let templates = Templates::load(None, brand()).unwrap();
        let link = "https://id.example.com/api/reset-password?token=tok456";
        let mail = templates.mail(
            Language::German,
            Mail::Reset {
                link,
                code: "012345",
                suspended: false,
                sign_in_link: None,
            },
        );
        assert!(mail.text.contains(link), "{}", mail.text);
        assert!(mail.text.contains("012345") && mail.html.contains("012345"));
        assert!(mail.subject.starts_with("Setzen Sie Ihr Passwort"));
        assert!(mail.html.contains("lang=\"de\""));
    }

    #[test]
    fn accept_language_picks_the_most_preferred_shipped_language() {
        for (header, expected) in [
            ("de-DE,de;q=0.9,en;q=0.8", Some(Language::German)),
            (
                "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7",
                Some(Language::English),
            ),
            ("en;q=0.5, de;q=0.6", Some(Language::German)),
            ("de;q=0, en;q=0.1", Some(Language::English)),
            ("fr, it", None),
            ("de;q=2", None),
            ("", None),
        ] {
            assert_eq!(Language::preferred(header), expected, "{header}");
        }
        assert_eq!(Language::of_tag("de-AT"), Some(Language::German));
        assert_eq!(Language::of_tag("EN_gb"), Some(Language::English));
    }
}
