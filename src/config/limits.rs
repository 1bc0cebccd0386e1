//! The rate limiter's settings: a budget per action, per client address and per account.

use super::parse_duration;
use crate::ratelimit::{Action, Policies, Policy};

/// `LATCHKEY_RATE_LIMIT_*`: a count per window (`10/1m`) or `off`, each.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Rate limits")]
pub struct LimitArgs {
    /// Rate limit of register per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REGISTER_IP", default_value = "1000/1m", value_parser = parse_limit)]
    pub rate_limit_register_ip: Limit,
    /// Rate limit of register per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REGISTER_ACCOUNT", default_value = "30/1m", value_parser = parse_limit)]
    pub rate_limit_register_account: Limit,
    /// Rate limit of login per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_LOGIN_IP", default_value = "1000/1m", value_parser = parse_limit)]
    pub rate_limit_login_ip: Limit,
    /// Rate limit of login per account (normalised email) and client network: a count per window
    /// (`10/1m`) or `off`. Per network too, so that nobody can spend the owner's budget.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_LOGIN_ACCOUNT", default_value = "20/1m", value_parser = parse_limit)]
    pub rate_limit_login_account: Limit,
    /// Rate limit of refresh per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REFRESH_IP", default_value = "1000/1m", value_parser = parse_limit)]
    pub rate_limit_refresh_ip: Limit,
    /// Rate limit of resend per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESEND_IP", default_value = "100/1m", value_parser = parse_limit)]
    pub rate_limit_resend_ip: Limit,
    /// Rate limit of resend per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESEND_ACCOUNT", default_value = "5/10m", value_parser = parse_limit)]
    pub rate_limit_resend_account: Limit,
    /// Rate limit of forgot per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_FORGOT_IP", default_value = "100/1m", value_parser = parse_limit)]
    pub rate_limit_forgot_ip: Limit,
    /// Rate limit of forgot per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_FORGOT_ACCOUNT", default_value = "5/10m", value_parser = parse_limit)]
    pub rate_limit_forgot_account: Limit,
    /// Rate limit of sign-in mail requests per client address: a count per window (`10/1m`) or
    /// `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_EMAIL_LOGIN_IP", default_value = "100/1m", value_parser = parse_limit)]
    pub rate_limit_email_login_ip: Limit,
    /// Rate limit of sign-in mail requests per account (normalised email): a count per window
    /// (`10/1m`) or `off`. Its own budget: spending it leaves forgot-password alone.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_EMAIL_LOGIN_ACCOUNT", default_value = "5/10m", value_parser = parse_limit)]
    pub rate_limit_email_login_account: Limit,
    /// Rate limit of reset per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_IP", default_value = "100/1m", value_parser = parse_limit)]
    pub rate_limit_reset_ip: Limit,
    /// Rate limit of reset per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_ACCOUNT", default_value = "10/10m", value_parser = parse_limit)]
    pub rate_limit_reset_account: Limit,
    /// Rate limit of confirm per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_CONFIRM_IP", default_value = "200/1m", value_parser = parse_limit)]
    pub rate_limit_confirm_ip: Limit,
    /// Reset codes a client network may present, across all accounts: a count per window or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_CODE_IP", default_value = "30/1h", value_parser = parse_limit)]
    pub rate_limit_reset_code_ip: Limit,
    /// Rate limit of second-factor answers and passkey ceremonies per client address: a count
    /// per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_MFA_IP", default_value = "300/1m", value_parser = parse_limit)]
    pub rate_limit_mfa_ip: Limit,
}

/// A configured limit: a policy, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Policy>);

/// Parses `10/1m` (a count per window, durations as everywhere else), or `off`.
pub fn parse_limit(raw: &str) -> Result<Limit, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(Limit(None));
    }
    let (limit, window) = raw
        .split_once('/')
        .ok_or_else(|| format!("{raw:?} is not a limit like 10/1m"))?;
    let limit: u32 = limit
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a limit like 10/1m"))?;
    let window = parse_duration(window)?;
    if limit == 0 || window < time::Duration::seconds(1) {
        return Err(format!(
            "{raw:?}: the count must be at least 1 and the window at least 1s"
        ));
    }
    Ok(Limit(Some(Policy { limit, window })))
}

impl LimitArgs {
    /// The budgets that are on, by action.
    pub fn into_policies(self) -> Policies {
        let mut policies = Policies::default();
        let per_ip = [
            (Action::Register, self.rate_limit_register_ip),
            (Action::Login, self.rate_limit_login_ip),
            (Action::Refresh, self.rate_limit_refresh_ip),
            (Action::Resend, self.rate_limit_resend_ip),
            (Action::Forgot, self.rate_limit_forgot_ip),
            (Action::EmailLogin, self.rate_limit_email_login_ip),
            (Action::Reset, self.rate_limit_reset_ip),
            (Action::ResetCode, self.rate_limit_reset_code_ip),
            (Action::Confirm, self.rate_limit_confirm_ip),
            (Action::Mfa, self.rate_limit_mfa_ip),
        ];
        let per_account = [
            (Action::Register, self.rate_limit_register_account),
            (Action::Login, self.rate_limit_login_account),
            (Action::Resend, self.rate_limit_resend_account),
            (Action::Forgot, self.rate_limit_forgot_account),
            (Action::EmailLogin, self.rate_limit_email_login_account),
            (Action::Reset, self.rate_limit_reset_account),
        ];
        for (action, limit) in per_ip {
            if let Some(policy) = limit.0 {
                policies.per_ip.insert(action, policy);
            }
        }
        for (action, limit) in per_account {
            if let Some(policy) = limit.0 {
                policies.per_account.insert(action, policy);
            }
        }
        policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_a_count_per_window_or_off() {
        assert_eq!(
            parse_limit("10/1m").unwrap().0,
            Some(Policy {
                limit: 10,
                window: time::Duration::minutes(1)
            })
        );
        assert_eq!(parse_limit("off").unwrap().0, None);
        for bad in ["10", "0/1m", "10/0s", "x/1m", "10/1 fortnight"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }
}
