//! Templates: an operator's file replaces its built-in twin in the mail sent, a broken or
//! unknown one stops start-up with one line, pages and mails speak German when asked, and
//! `latchkey templates list|export` hand the built-ins out.

use crate::support::{PASSWORD, latchkey_command, spawn_app_with, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

fn write(dir: &Path, name: &str, source: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, source).unwrap();
}

#[tokio::test]
async fn an_override_replaces_its_built_in_twin_in_the_mail_sent() {
    let templates = tempfile::tempdir().unwrap();
    write(
        templates.path(),
        "en/mail/verification.txt",
        "Hello from {{ product }}! Your link: {{ link }}\n",
    );
    let dir = templates.path().display().to_string();
    let (app, smtp) =
        spawn_app_with_mail(&["--templates-dir", &dir, "--product-name", "Acme"]).await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;

    assert!(mail.contains("Hello from Acme! Your link: "), "{mail}");
    assert!(
        !mail.contains("by opening this link"),
        "the built-in text part is gone: {mail}"
    );
    // The parts not overridden are the built-ins, and the link still confirms.
    assert!(mail.subject().starts_with("Confirm your email for Acme"));
    assert!(mail.contains("Content-Type: text/html"), "{mail}");
    let confirmed = super::confirm(&app, &mail.confirm_token()).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
}

#[test]
fn a_broken_unknown_or_unreadable_override_stops_start_up_with_one_line() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "en/mail/reset.html",
            "{% if code %}unclosed",
            "en/mail/reset.html",
        ),
        // A value no mail has: it would render empty, so it is refused.
        (
            "de/mail/verification.txt",
            "{{ lnk }}",
            "de/mail/verification.txt",
        ),
        (
            "en/mail/verificaton.txt",
            "a typo in the name",
            "en/mail/verificaton.txt",
        ),
        ("", "", "cannot read LATCHKEY_TEMPLATES_DIR"),
    ];
    for (name, source, mentions) in cases {
        let work = tempfile::tempdir().unwrap();
        let templates = work.path().join("templates");
        if name.is_empty() {
            // The directory is missing altogether.
        } else {
            write(&templates, name, source);
        }
        let output = latchkey_command()
            .arg("serve")
            .current_dir(work.path())
            .env("LATCHKEY_LISTEN", "127.0.0.1:0")
            .env("LATCHKEY_METRICS_LISTEN", "off")
            .env("LATCHKEY_TEMPLATES_DIR", &templates)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(mentions), "{stderr}");
        assert!(
            !work.path().join("latchkey.db").exists(),
            "{name}: nothing is opened before the templates are checked"
        );
    }
}

#[tokio::test]
async fn pages_follow_the_browsers_language() {
    let app = spawn_app_with(&[]).await;
    let client = reqwest::Client::new();
    for (accept, title, lang) in [
        (
            Some("de-DE,de;q=0.9,en;q=0.5"),
            "Neues Passwort wählen",
            "de",
        ),
        (Some("fr, en;q=0.5"), "Choose a new password", "en"),
        (None, "Choose a new password", "en"),
    ] {
        let mut request = client.get(format!("{}/reset-password?token=abc", app.url));
        if let Some(accept) = accept {
            request = request.header("accept-language", accept);
        }
        let page = request.send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["content-language"], lang);
        let policy = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        assert!(html.contains(title), "{html}");
        assert!(html.contains(&format!("<html lang=\"{lang}\">")), "{html}");
        assert!(html.contains("value=\"abc\""), "{html}");
        // The stylesheet is a template too; the policy allows exactly its text.
        let style = html
            .split("<style>")
            .nth(1)
            .unwrap()
            .split("</style>")
            .next()
            .unwrap();
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, style.as_bytes());
        let expected = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, hash);
        assert!(policy.contains(&format!("'sha256-{expected}'")), "{policy}");
    }
}

#[test]
fn templates_list_names_every_built_in_and_export_writes_them_without_overwriting() {
    let listed = latchkey_command()
        .args(["templates", "list"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let names: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for expected in [
        "layout/page.css",
        "en/mail/verification.subject.txt",
        "de/mail/reset.html",
        "de/pages/login.html",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    let out = tempfile::tempdir().unwrap();
    write(out.path(), "en/mail/reset.txt", "mine\n");
    let export = latchkey_command()
        .args(["templates", "export"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(export.status.success());
    assert_eq!(
        std::fs::read_to_string(out.path().join("en/mail/reset.txt")).unwrap(),
        "mine\n",
        "an existing file is left alone"
    );
    assert!(String::from_utf8_lossy(&export.stderr).contains("reset.txt exists"));
    let written = std::fs::read_to_string(out.path().join("de/mail/verification.txt")).unwrap();
    assert!(written.contains("{{ link }}"));
    let listed_files = names.len();
    let exported = walk(out.path());
    assert_eq!(exported, listed_files, "one file per template");
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { walk(&path) } else { 1 })
        .sum()
}

#[tokio::test]
async fn mails_speak_the_accounts_language_taken_from_its_locale_or_its_browser() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;

    // A locale of its own.
    let registered = app
        .post(
            "/auth/register",
            &json!({"email": "hanna@example.com", "password": PASSWORD, "locale": "de-AT"}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let user: Value = registered.json().await.unwrap();
    assert_eq!(user["locale"], "de-AT");
    let mail = smtp.wait_for_mail_to("hanna@example.com", 1).await;
    assert!(mail.contains("Willkommen bei latchkey."), "{mail}");
    assert!(mail.contains("Content-Type: text/plain; charset=utf-8"));

    // None given: the browser's language when registering, kept with the account.
    let registered = app
        .client
        .post(format!("{}/auth/register", app.url))
        .header("accept-language", "fr-CH, de;q=0.8, en;q=0.5")
        .json(&json!({"email": "jonas@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let user: Value = registered.json().await.unwrap();
    assert_eq!(user["locale"], "de");
    assert!(
        smtp.wait_for_mail_to("jonas@example.com", 1)
            .await
            .contains("Willkommen bei latchkey.")
    );

    // A language latchkey does not speak, or none at all: English.
    app.post(
        "/auth/register",
        &json!({"email": "luc@example.com", "password": PASSWORD, "locale": "fr"}),
    )
    .await;
    let mail = smtp.wait_for_mail_to("luc@example.com", 1).await;
    assert!(mail.contains("Welcome to latchkey."), "{mail}");

    // A later mail, sent by a request with another language, follows the account.
    let tokens = super::verified_login(&app, &smtp, "ada@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    for (locale, status) in [
        (json!("de"), StatusCode::OK),
        (json!("not a tag"), StatusCode::BAD_REQUEST),
        (json!("x"), StatusCode::BAD_REQUEST),
    ] {
        let patched = app
            .send(
                reqwest::Method::PATCH,
                "/users/me",
                token,
                &json!({"locale": locale}),
            )
            .await;
        assert_eq!(patched.status(), status, "{locale}");
    }
    let me: Value = app
        .get("/users/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["locale"], "de");
    app.client
        .post(format!("{}/auth/forgot-password", app.url))
        .header("accept-language", "en")
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    let reset = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(
        reset.contains("Wählen Sie hier ein neues Passwort"),
        "{reset}"
    );
    assert!(reset.reset_link().contains("/reset-password?token="));
    assert!(
        reset.contains("geben Sie diesen Code in der App ein: "),
        "{reset}"
    );

    // `null` clears it: English again.
    let cleared = app
        .send(
            reqwest::Method::PATCH,
            "/users/me",
            token,
            &json!({"locale": null}),
        )
        .await;
    let cleared: Value = cleared.json().await.unwrap();
    assert!(cleared["locale"].is_null());
    let updated = app.events_of_type("USER_UPDATED").await;
    assert!(
        updated
            .iter()
            .any(|event| event["data"]["changed"] == json!(["locale"])),
        "{updated:?}"
    );
}
