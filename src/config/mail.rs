//! The mail channel's settings.

use super::{Secret, parse_duration};
use time::Duration;

/// `LATCHKEY_SMTP_URL`, `LATCHKEY_MAIL_*`, `LATCHKEY_PRODUCT_NAME`, `LATCHKEY_TEMPLATES_DIR`,
/// `LATCHKEY_EMAIL_LOGIN*`, `LATCHKEY_INVITATION_TTL`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Mail")]
pub struct MailArgs {
    /// SMTP server: `smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://…`; unset,
    /// mails are written to the log (and to LATCHKEY_MAIL_DIR).
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// Without SMTP: a directory that gets one `.eml` file per mail.
    #[arg(long, env = "LATCHKEY_MAIL_DIR")]
    pub mail_dir: Option<std::path::PathBuf>,
    /// The `From` of every mail.
    #[arg(
        long,
        env = "LATCHKEY_MAIL_FROM",
        default_value = "latchkey <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// The product name used in mail subjects, mail bodies and pages.
    #[arg(long, env = "LATCHKEY_PRODUCT_NAME", default_value = "latchkey")]
    pub product_name: String,
    /// A directory of templates that replace the built-in ones of the same name (mails and
    /// hosted pages; `latchkey templates list` names them).
    #[arg(long, env = "LATCHKEY_TEMPLATES_DIR")]
    pub templates_dir: Option<std::path::PathBuf>,
    /// First retry delay of an undelivered mail; doubles with each failure (jittered, at most 1h).
    #[arg(long, env = "LATCHKEY_MAIL_RETRY_BASE", default_value = "10s", value_parser = parse_duration)]
    pub mail_retry_base: Duration,
    /// An undelivered mail is given up (and logged as an error) after this long.
    #[arg(long, env = "LATCHKEY_MAIL_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub mail_max_age: Duration,
    /// Sign-in by a mailed link or code (`POST /auth/email-login`).
    #[arg(long, env = "LATCHKEY_EMAIL_LOGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub email_login: bool,
    /// How long a sign-in link and code work.
    #[arg(long, env = "LATCHKEY_EMAIL_LOGIN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub email_login_ttl: Duration,
    /// How long an invitation's link works.
    #[arg(long, env = "LATCHKEY_INVITATION_TTL", default_value = "7d", value_parser = parse_duration)]
    pub invitation_ttl: Duration,
    /// How long the link that undoes an email change works (mailed to the old address).
    #[arg(long, env = "LATCHKEY_EMAIL_REVERT_TTL", default_value = "7d", value_parser = parse_duration)]
    pub email_revert_ttl: Duration,
}

/// The validated mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// SMTP URL, if any (never printed).
    pub smtp_url: Option<Secret>,
    /// `.eml` directory when there is no SMTP.
    pub dir: Option<std::path::PathBuf>,
    /// `From` of every mail.
    pub from: lettre::message::Mailbox,
    /// Product name.
    pub product_name: String,
    /// The operator's templates, if any.
    pub templates_dir: Option<std::path::PathBuf>,
    /// First mail retry delay.
    pub retry_base: Duration,
    /// Age at which a mail is given up.
    pub max_age: Duration,
    /// Whether sign-in by email is on.
    pub email_login: bool,
    /// Lifetime of a sign-in link and code.
    pub email_login_ttl: Duration,
    /// Lifetime of an invitation's link.
    pub invitation_ttl: Duration,
    /// Lifetime of the link that undoes an email change.
    pub email_revert_ttl: Duration,
}

impl MailArgs {
    /// Checks the sender, the SMTP URL's form and the retry timing.
    pub fn validate(self) -> Result<MailConfig, String> {
        let from = self
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| {
                format!(
                    "LATCHKEY_MAIL_FROM {:?} is not a mail address: {e}",
                    self.mail_from
                )
            })?;
        if let Some(url) = &self.smtp_url {
            crate::mail::Transport::new(Some(url.expose()), None).map_err(|e| e.to_string())?;
        }
        if self.email_login_ttl < Duration::minutes(1) || self.email_login_ttl > Duration::hours(1)
        {
            return Err(
                "LATCHKEY_EMAIL_LOGIN_TTL must be 1m to 1h: a sign-in link is a key".into(),
            );
        }
        if self.invitation_ttl < Duration::hours(1) || self.invitation_ttl > Duration::days(30) {
            return Err("LATCHKEY_INVITATION_TTL must be 1h to 30d".into());
        }
        // The owner's way back from a hijacked account: it must outlive a few days away.
        if self.email_revert_ttl < Duration::days(1) || self.email_revert_ttl > Duration::days(90) {
            return Err("LATCHKEY_EMAIL_REVERT_TTL must be 1d to 90d".into());
        }
        if self.mail_retry_base < Duration::milliseconds(10)
            || self.mail_max_age < Duration::seconds(1)
        {
            return Err(
                "LATCHKEY_MAIL_RETRY_BASE must be at least 10ms, LATCHKEY_MAIL_MAX_AGE at least 1s"
                    .into(),
            );
        }
        Ok(MailConfig {
            smtp_url: self.smtp_url,
            dir: self.mail_dir,
            from,
            product_name: self.product_name,
            templates_dir: self.templates_dir,
            retry_base: self.mail_retry_base,
            max_age: self.mail_max_age,
            email_login: self.email_login,
            email_login_ttl: self.email_login_ttl,
            invitation_ttl: self.invitation_ttl,
            email_revert_ttl: self.email_revert_ttl,
        })
    }
}
