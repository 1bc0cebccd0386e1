//! Mail flows over a real SMTP conversation, by flow: confirmation (register, confirm, resend),
//! reset (forgot, reset by link and by code), codes (guessing a reset code), delivery (SMTP
//! outages and restarts, `.eml` files, links from the public URL, notices and conceal mode), and
//! the hosted pages, and the templates they are all rendered from.

mod codes;
mod confirmation;
mod delivery;
mod email_change;
mod email_login;
mod invitations;
mod pages;
mod reset;
mod templates;

use crate::support::{PASSWORD, SmtpServer, TestApp};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// Confirms with the token and, as a self-registered account's first confirmation needs, the
/// password every test account has.
async fn confirm(app: &TestApp, token: &str) -> reqwest::Response {
    app.post(
        "/auth/confirm-email",
        &json!({"token": token, "password": PASSWORD}),
    )
    .await
}

/// [`confirm`], for the other test modules.
pub(crate) async fn confirm_for_tests(app: &TestApp, token: &str) -> reqwest::Response {
    confirm(app, token).await
}

async fn forgot_password(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/auth/forgot-password", &json!({"email": email}))
        .await
}

async fn reset(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/auth/reset-password", &body).await
}

/// Registers, follows the mailed confirmation link: a verified account, logged in.
async fn verified_login(app: &TestApp, smtp: &SmtpServer, email: &str) -> Value {
    let before = smtp.mails_to(email).len();
    app.register(email, PASSWORD).await;
    let mail = smtp.wait_for_mail_to(email, before + 1).await;
    confirm(app, &mail.confirm_token()).await;
    app.login(email, PASSWORD).await.json().await.unwrap()
}
